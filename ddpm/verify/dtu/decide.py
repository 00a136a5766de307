"""The parent side of the 02460 plug-in: every outcome, computed from the child's records alone.

``decide(records, config)`` imports no student code and trusts no verdict from the child: it reads
the raw records (probe inputs and outputs, draws, shapes, exceptions, lines) and computes each spec
on its own evidence (:mod:`ddpm.verify.training`, :mod:`ddpm.verify.sampling`). Before any maths it
asks whether the records can be read at all, and answers "cannot verify" (exit 2) — never a list of
bugs — when they cannot: the file's code used a stand-in for a package that is not installed; it
draws from a generator of its own, or its draws do not repeat under the global seeds; a method
returned a tensor with no values (a meta tensor). Records of unknown kinds or malformed fields make
the run "could not verify" too.
"""

from __future__ import annotations

import torch

from ddpm.verify.adapter import TEMPLATE_TENSORS
from ddpm.verify.coefficients import RTOL
from ddpm.verify.dtu.specs import RECORD_KINDS, SPECS_02460, Config, start_shift
from ddpm.verify.loader import PASSTHROUGH
from ddpm.verify.report import FAIL, PASS, UNDECIDED, Decision, Outcome
from ddpm.verify.sampling import decide_law, decide_network_call, decide_sampling
from ddpm.verify.training import TrainingFacts, decide_training

__all__ = ["decide", "MalformedRecords"]


class MalformedRecords(Exception):
    """The records are not what 02460's observer emits."""


def _as_pair(record) -> tuple[str, dict]:
    if isinstance(record, dict):
        kind, fields = record.get("kind"), record.get("fields")
    else:
        kind, fields = getattr(record, "kind", None), getattr(record, "fields", None)
    if not isinstance(kind, str) or not isinstance(fields, dict):
        raise MalformedRecords(f"a record that is not (kind, fields): {type(record).__name__}")
    if kind not in RECORD_KINDS:
        raise MalformedRecords(f"a record of unknown kind {kind!r}")
    return kind, fields


_CALL_FIELDS = {
    "method": str,
    "role": str,
    "round": int,
    "net": list,
    "draws": list,
    "out_desc": str,
    "error_site": str,
    "return_site": str,
}


def _check_call(f: dict) -> None:
    for name, kind in _CALL_FIELDS.items():
        if not isinstance(f.get(name), kind):
            raise MalformedRecords(f"a call record whose {name} is {type(f.get(name)).__name__}")
    if f["error"] is not None and not isinstance(f["error"], str):
        raise MalformedRecords("a call record whose error is not text")
    if f["out"] is not None and not isinstance(f["out"], torch.Tensor):
        raise MalformedRecords("a call record whose out is not a tensor")
    for n in f["net"]:
        if not isinstance(n, dict) or not isinstance(n.get("x_shape"), list) or not isinstance(n.get("site"), str):
            raise MalformedRecords("a network call record without x_shape or site")
        for key in ("x", "t"):
            if n.get(key) is not None and not isinstance(n[key], torch.Tensor):
                raise MalformedRecords(f"a network call record whose {key} is not a tensor")
        if n.get("x") is not None and list(n["x"].shape) != n["x_shape"]:
            raise MalformedRecords("a network call record whose x does not have its stated shape")
    for d in f["draws"]:
        if not isinstance(d, dict) or not isinstance(d.get("site"), str) or not isinstance(d.get("shape"), list):
            raise MalformedRecords("a draw record without site or shape")


def _all(status: str, why: str) -> list[Outcome]:
    return [Outcome(k, status, why) for k in SPECS_02460]


def _cannot(records: dict, c: Config) -> str | None:
    """Why the records cannot be judged at all (a stand-in used, own randomness, an exotic tensor).

    Or None.
    """
    touches = [f for f in records["stub_touch"] if f["module"].split(".")[0] not in PASSTHROUGH]
    if touches:
        packages = sorted({f["module"].split(".")[0] for f in touches})
        where = touches[0]["site"]
        return (
            f"needs {', '.join(packages)}: the file's DDPM uses {touches[0]['module']}"
            + (f" ({where})" if where else "")
            + f", and {packages[0]} is not installed here, so the verifier "
            "could only run it with a stand-in, whose results say nothing about the file's maths"
        )
    calls = records["call"]
    own = [d for k in calls for d in k["draws"] if d.get("own_generator")]
    if own:
        return (
            f"this file draws from its own torch.Generator ({own[0]['site'] or own[0]['fn']}): the verifier "
            "reproduces a file's draws by reseeding torch's global generator, so it cannot verify this file's "
            "randomness (draw with torch.randn_like / torch.randint without generator= to be verified)"
        )
    for k in calls:
        if k["out"] is None and k["out_desc"].startswith("a tensor") and not k["error"]:
            return f"{k['method']} returned {k['out_desc']}, which holds no values the verifier can read"
    pairs: dict[tuple, dict] = {}
    for k in calls:
        pairs.setdefault((k["method"], k["round"], k["role"]), k)
    for (method, rnd, role), k in pairs.items():
        if role != "answer":
            continue
        z = pairs.get((method, rnd, "zero"))
        if z is None or z["error"] or k["error"]:
            continue
        same = [(d["fn"], d["shape"]) for d in z["draws"]] == [(d["fn"], d["shape"]) for d in k["draws"]]
        if (
            method == "negative_elbo"
            and same
            and len(z["net"]) == len(k["net"]) == 1
            and z["net"][0]["t"] is not None
            and k["net"][0]["t"] is not None
        ):
            same = torch.equal(z["net"][0]["t"], k["net"][0]["t"])
        if (
            method == "sample"
            and same
            and z["net"]
            and k["net"]
            and z["net"][0]["x"] is not None
            and k["net"][0]["x"] is not None
            and z["net"][0]["x"].shape == k["net"][0]["x"].shape
        ):
            d0 = (k["net"][0]["x"] - z["net"][0]["x"]).reshape(-1).double()
            delta = start_shift(c).reshape(-1).double()
            if d0.numel() == delta.numel() and d0.abs().max() > 0:
                factor = (d0 @ delta) / (delta @ delta)
                same = bool((d0 - factor * delta).norm() <= RTOL * (d0.norm() + 1e-30))
        if not same:
            return (
                f"{method}'s draws do not repeat when torch's, numpy's and random's global seeds are reset "
                "(the verifier reruns each method under one seed to cancel the noise), so it cannot verify "
                "this file's randomness"
            )
    return None


def _schedule(c: Config, records: dict, outcomes: dict[str, Outcome], sample_steps_named: bool) -> tuple[Outcome, list]:
    """The linear schedule, judged by the coefficients the code applies.

    The stored tensors are a hint only.
    """
    notes = []
    s = c.schedule
    tensors = records["built"][0]["tensors"] if records["built"] else {}
    found: dict[str, str] = {}  # our coefficient -> the tensor of the student's that holds it
    for name, value in tensors.items():
        v = value.double().reshape(-1)[-c.T :]
        for ours in ("beta", "alpha", "alpha_bar"):
            want = getattr(s, ours)[1:]
            if v.numel() == c.T and bool(((v - want).abs() <= RTOL * want.abs()).all()):
                found.setdefault(ours, name)
    renamed = {ours: name for ours, name in found.items() if {v: k for k, v in TEMPLATE_TENSORS.items()}[ours] != name}
    if renamed:
        notes.append(
            "schedule: the DDPM keeps "
            + ", ".join(f"{ours}_t in {name!r}" for ours, name in renamed.items())
            + " (the template's names are beta, alpha, alpha_cumprod); the schedule spec reads the "
            "coefficients the code applies, so names do not matter"
        )
    fm = outcomes.get("forward_mean")
    training_named = fm is not None and (fm.status == PASS or (fm.status == FAIL and "where eq. 4 has" in fm.detail))
    if training_named or sample_steps_named:
        where = " and ".join(w for w, ok in (("training", training_named), ("sampling", sample_steps_named)) if ok)
        return Outcome(
            "schedule",
            PASS,
            f"the coefficients applied in {where} are the linear schedule's (beta {c.beta_1}..{c.beta_T}, T = {c.T})",
        ), notes
    evidence = fm is not None and fm.status == FAIL and "for no t in" in fm.detail
    if not evidence:
        return Outcome("schedule", UNDECIDED, "not decided: no coefficient the code applies could be measured"), notes
    stored = ""
    for ours, name in TEMPLATE_TENSORS.items():
        value = tensors.get(ours)
        want = getattr(s, name)[1:]
        if (
            value is not None
            and value.numel() == c.T
            and not bool(((value.double() - want).abs() <= RTOL * want.abs()).all())
        ):
            stored = (
                f"; its {ours} is not the linear schedule either (first entry {float(value[0]):.6g}, "
                f"beta_1-based {float(want[0]):.6g})"
            )
            break
    assert fm is not None  # evidence above needs forward_mean's outcome
    return Outcome(
        "schedule",
        FAIL,
        "no coefficient the code applies is one of the linear schedule from "
        f"beta_1 = {c.beta_1} to beta_T = {c.beta_T} at T = {c.T} (see forward_mean, sample_mean)" + stored,
        lines=fm.lines,
    ), notes


def decide(records, config: dict) -> Decision:
    """Every 02460 spec from the child's records: a pure function of ``records`` and ``config``."""
    c = Config.from_dict(config)
    # One thread: the tensors are small (~1e5 entries) and torch's thread pool, on a machine whose cores are
    # busy, spends ten times the work spinning (2.2 s against 0.2 s of CPU a file, measured under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _decide_records(records, c)
    finally:
        torch.set_num_threads(threads)


def _decide_records(records, c: Config) -> Decision:
    try:
        grouped: dict[str, list[dict]] = {k: [] for k in RECORD_KINDS}
        for record in records:
            kind, fields = _as_pair(record)
            grouped[kind].append(fields)
        seen = set()
        for f in grouped["call"]:
            _check_call(f)
            key = (f["method"], f["role"], f["round"])
            if key in seen:
                raise MalformedRecords(f"two records of the same call {key}")
            seen.add(key)
        for kind in ("loaded", "built", "shape_fallback", "law_plan"):
            if len(grouped[kind]) > 1:
                raise MalformedRecords(f"{len(grouped[kind])} records of kind {kind!r}, where one is emitted")
        return _decide(grouped, c)
    except MalformedRecords as exc:
        return Decision(
            _all(UNDECIDED, "not decided: the records are malformed"),
            error=f"could not verify: the child's records are malformed ({exc})",
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
        return Decision(
            _all(UNDECIDED, "not decided: the records are malformed"),
            error=f"could not verify: the child's records are malformed ({type(exc).__name__}: {exc})",
        )


def _decide(r: dict[str, list[dict]], c: Config) -> Decision:
    notes: list[str] = []
    if r["crash"]:
        return Decision(
            _all(UNDECIDED, "not decided: the verifier's child crashed"),
            error=f"could not verify: the verifier's child crashed: {r['crash'][0].get('error', '')}",
        )
    if r["load_error"]:
        return Decision(_all(UNDECIDED, "not decided: the file could not be loaded"), error=r["load_error"][0]["error"])
    if not r["loaded"]:
        return Decision(
            _all(UNDECIDED, "not decided: no record of loading the file"),
            error="could not verify: the records do not say the file was loaded",
        )
    stubbed = r["loaded"][0]["stubbed"]
    if stubbed:
        notes.append(f"stood in stubs for the imports that are not installed: {', '.join(stubbed)}")
    why = _cannot(r, c)
    if why:
        return Decision(_all(UNDECIDED, "not decided: cannot verify (see above)"), notes, cannot_verify=why)
    if r["shape_fallback"]:
        fb = r["shape_fallback"][0]
        c = Config.from_dict(dict(c.to_dict(), image=True))
        notes.append(
            f"the file works only on image-shaped data: on x of shape (batch, D) {fb['error']}; every "
            f"spec is checked with x of shape {tuple(fb['shape'])} instead (the sheet's toy data is "
            "(batch, 2))"
        )
    calls = r["call"]
    train_calls = [k for k in calls if k["method"] in ("negative_elbo", "loss")]
    runs = {k["role"]: k for k in calls if k["method"] == "sample"}
    facts: TrainingFacts = decide_training(c, train_calls)
    outcomes = {o.spec: o for o in facts.outcomes}
    sample_calls = [runs[k] for k in ("zero", "answer") if k in runs]
    outcomes["network_call"] = decide_network_call(c, facts, train_calls, sample_calls)
    for o in decide_sampling(c, facts, runs.get("zero"), runs.get("answer")):
        outcomes[o.spec] = o
    plan = r["law_plan"][0] if r["law_plan"] else None
    outcomes["sample_law"] = decide_law(c, facts, plan, runs.get("law"))
    if (
        plan is not None
        and facts.encoding
        and plan["steps"]
        and {int(t): float(v) for t, v in zip(plan["steps"], plan["codes"])} != facts.encoding
    ):
        outcomes["sample_law"] = Outcome(
            "sample_law", UNDECIDED, "not decided: the child's law run decoded t differently from the training records"
        )
    sm = outcomes.get("sample_mean")
    named = sm is not None and sm.status == PASS
    outcomes["schedule"], schedule_notes = _schedule(c, r, outcomes, named)
    notes += schedule_notes
    missing = [k for k in SPECS_02460 if k not in outcomes]
    for k in missing:
        outcomes[k] = Outcome(k, UNDECIDED, "not decided: no evidence was recorded")
    ordered = [
        Outcome(k, outcomes[k].status, outcomes[k].detail, SPECS_02460[k][1], outcomes[k].lines) for k in SPECS_02460
    ]
    return Decision(ordered, notes)
