"""``ddpm verify --course 6.S183``.

The notebook reader, the child's observer and the parent's decision.

The cases in tests/verify_cases_s183/ (written by make_cases.py there) are run in-process through
``channel.Recorder`` (the records encoded and decoded as the sandbox's channel does); a few run the
whole way through the sandbox and the command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from ddpm.verify.channel import Recorder
from ddpm.verify.report import FAIL, PASS, UNDECIDED
from ddpm.verify.s183.decide import decide
from ddpm.verify.s183.notebook import looks_like_s183, plan, read_text, run_definitions, where
from ddpm.verify.s183.observe import observe
from ddpm.verify.s183.specs import SPECS_S183

CASES = Path(__file__).parent / "verify_cases_s183"
MANIFEST = json.loads((CASES / "cases.json").read_text())


def verified(path: Path, config: dict | None = None):
    rec = Recorder()
    observe(path, config or {}, rec)
    return decide(rec.records, config or {}), rec.records


def by_spec(decision) -> dict:
    return {o.spec: o for o in decision.outcomes}


@pytest.mark.parametrize("name,form", [(n, f) for n in sorted(MANIFEST) for f in MANIFEST[n]["forms"]])
def test_case(name, form):
    """Each correct form exits 0; each mutant exits 1 naming its mistake and showing the student's line."""
    want = MANIFEST[name]
    decision, _ = verified(CASES / f"{name}{form}")
    assert decision.error is None and decision.cannot_verify is None
    assert [o.spec for o in decision.outcomes] == list(SPECS_S183)
    if want["exit"] == 0:
        assert decision.exit_status == 0, [(o.spec, o.detail) for o in decision.outcomes if o.status != PASS]
        return
    assert decision.exit_status == 1
    o = by_spec(decision)[want["spec"]]
    assert o.status == FAIL, (o.spec, o.status, o.detail)
    assert want["words"] in o.detail, o.detail
    assert any(want["line"] in line for line in o.lines), o.lines
    assert all(line.startswith("cell ") for line in o.lines), o.lines
    if form == ".ipynb":
        assert all(" of the file)" not in line for line in o.lines), o.lines


def test_cases_are_what_the_generator_writes(tmp_path, monkeypatch):
    """The committed cases are make_cases.py's output (regenerate after editing it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_cases", CASES / "make_cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    for path in tmp_path.iterdir():
        assert path.read_text() == (CASES / path.name).read_text(), path.name


def test_mutants_fail_nothing_else_on_the_loss_side():
    """A loss mutant leaves the sampler's specs passing and the other way round: one run names each bug."""
    for name, want in MANIFEST.items():
        if want["exit"] != 1 or name in ("mutant_abs_not_square",):
            continue
        decision, _ = verified(CASES / f"{name}.py")
        other = "sample_" if want["spec"].startswith("loss_") else "loss_"
        assert all(o.status == PASS for o in decision.outcomes if o.spec.startswith(other)), name


# ---------------------------------------------------------------- reading a notebook
NOTEBOOK = [
    ("markdown", "# answers"),
    ("code", "!pip install smalldiffusion\nimport torch\n%matplotlib inline\nN = 200\nscale = 2.0 * N"),
    ("code", "%%bash\necho this is not python"),
    ("code", "%%time\ndef helper(x):\n    return x + 1\nraise RuntimeError('a top-level statement ran')"),
    (
        "code",
        "def training_loop(loader, model, schedule, epochs=10):\n    yield 1.0\n\n"
        "for _ in range(3):\n    raise RuntimeError('a loop ran')\n"
        "losses = list(training_loop(None, None, None))",
    ),
    (
        "code",
        "def training_loop(loader, model, schedule, epochs=10, default=scale):\n    yield 2.0\n"
        "open('/tmp/should-not-exist-s183', 'w').write('x')",
    ),
]


def ipynb_text(cells) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) if k == "code" else nbformat.v4.new_markdown_cell(s) for k, s in cells]
    return nbformat.writes(nb)


def test_only_imports_and_definitions_run_and_the_last_definition_wins():
    nb = read_text(ipynb_text(NOTEBOOK), "answers.ipynb")
    assert [c.number for c in nb.cells] == [2, 3, 4, 5, 6]  # markdown counted, not kept
    p = plan(nb)
    namespace: dict = {}
    errors = run_definitions(p, namespace)
    assert errors == []
    assert namespace["N"] == 200 and namespace["scale"] == 400.0 and namespace["helper"](1) == 2
    assert next(namespace["training_loop"](None, None, None)) == 2.0  # cell 6's, the last
    assert p.defines["training_loop"] == (6, 1)
    assert not Path("/tmp/should-not-exist-s183").exists()
    skipped = {(c, line) for c, line, _ in p.skipped}
    assert {(5, 4), (5, 6), (6, 3), (4, 4)} <= skipped


def test_magic_lines_are_blanked_keeping_line_numbers():
    nb = read_text(ipynb_text(NOTEBOOK), "answers.ipynb")
    cell2, cell3, cell4 = nb.cells[0], nb.cells[1], nb.cells[2]
    assert cell2.source.split("\n")[:3] == ["pass", "import torch", "pass"]
    assert cell3.source.strip() == ""  # a %%bash cell is not Python
    assert cell4.source.split("\n")[1] == "def helper(x):"  # %%time runs its body
    guarded = read_text(
        "try:\n    import smalldiffusion\nexcept ImportError:\n    !pip install smalldiffusion\n", "a.py"
    )
    assert plan(guarded).syntax_errors == [] and guarded.cells[0].source.split("\n")[3] == "    pass"
    assert "!pip install smalldiffusion" in cell2.dropped


def test_script_forms_and_places():
    script = "import torch\n\n# %%\ndef samples(model, sigmas):\n    yield 1\n\n# %% [markdown]\n# text\n"
    nb = read_text(script, "answers.py")
    assert nb.kind == "cells" and [c.first_line for c in nb.cells] == [1, 3, 7]
    assert nb.where(2, 2) == "cell 2, line 2 (line 4 of the file)"
    plain = read_text("import torch\ndef samples(model, sigmas):\n    yield 1\n", "answers.py")
    assert plain.kind == "script" and plain.where(1, 3) == "line 3"
    assert where("ipynb", [{"number": 7, "first_line": 0}], 7, 4) == "cell 7, line 4"
    exported = read_text("#!/usr/bin/env python\n# In[1]:\nimport torch\n# In[ ]:\nx = 1\n", "nb.py")
    assert len(exported.cells) == 3


def test_detect():
    s183 = ipynb_text([("code", "def samples(model, sigmas, xt=None, gam=1., batchsize=1):\n    yield xt")])
    assert looks_like_s183(s183)
    assert looks_like_s183("import torch\ndef training_loop(loader, model, schedule):\n    yield 0.0\n")
    assert not looks_like_s183(
        "class DDPM(nn.Module):\n    def negative_elbo(self, x): ...\n"
        "    def sample(self): ...\n"
        "def training_loop(loader, model, schedule):\n    pass\n"
    )
    assert not looks_like_s183("{not json")
    from ddpm.verify.runner import course_for

    assert course_for(CASES / "correct_mse_keep.ipynb").name == "6.S183"
    assert course_for(CASES / "correct_mse_keep.py").name == "6.S183"
    assert course_for(Path(__file__).parent / "verify_cases" / "correct_template.py").name == "02460"


# ---------------------------------------------------------------- what cannot be verified, what is undecided
def write_notebook(tmp_path: Path, name: str, *sources: str) -> Path:
    path = tmp_path / name
    path.write_text(ipynb_text([("code", s) for s in sources]))
    return path


IMPORTS = (
    "import torch\nfrom itertools import pairwise\nfrom smalldiffusion import training_loop, samples, TimeInputMLP"
)
SAMPLER = (CASES / "correct_mse_keep.py").read_text().split("# %%\n")[-2]


def test_a_function_only_imported_from_the_library_is_undecided(tmp_path):
    """The sheet's template imports training_loop from smalldiffusion.

    A notebook that never defines it is exit 2.
    """
    path = write_notebook(
        tmp_path,
        "nb.ipynb",
        IMPORTS,
        "from typing import Optional\nfrom accelerate import Accelerator\nplt = None",
        SAMPLER,
    )
    decision, _ = verified(path)
    outcomes = by_spec(decision)
    assert all(outcomes[k].status == UNDECIDED for k in SPECS_S183 if k.startswith("loss_"))
    assert "smalldiffusion's" in outcomes["loss_input"].detail
    assert all(outcomes[k].status == PASS for k in SPECS_S183 if k.startswith("sample_"))
    assert decision.exit_status == 2


def test_the_unfilled_template_does_not_parse(tmp_path):
    template = (
        "def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):\n    for x0 in loader:\n"
        "        eps = torch.randn_like(x0)\n        loss = # mse_loss(..., ...)\n        yield loss.item()\n"
    )
    path = write_notebook(tmp_path, "nb.ipynb", IMPORTS, template)
    decision, _ = verified(path)
    o = by_spec(decision)["loss_target"]
    assert o.status == UNDECIDED and "does not parse" in o.detail and "cell 2, line 4" in o.detail
    assert decision.exit_status == 2


def test_a_stand_in_used_is_cannot_verify_never_a_bug(tmp_path):
    sampler = (
        "def samples(model, sigmas, xt=None, gam=1., batchsize=1):\n    net = TimeInputMLP()\n"
        "    for s, s_next in pairwise(sigmas):\n        xt = xt - (s - s_next) * net(xt, s)\n"
        "        yield xt\n"
    )
    path = write_notebook(tmp_path, "nb.ipynb", IMPORTS, sampler)
    decision, _ = verified(path)
    assert decision.cannot_verify and "TimeInputMLP" in decision.cannot_verify
    assert decision.exit_status == 2
    assert not any(o.status == FAIL for o in decision.outcomes)


def test_an_exception_names_the_student_line(tmp_path):
    sampler = (
        "def samples(model, sigmas, xt=None, gam=1., batchsize=1):\n    for s, s_next in pairwise(sigmas):\n"
        "        xt = xt - (s - s_next) * model.predict_eps(xt, s)[100]\n        yield xt\n"
    )
    path = write_notebook(tmp_path, "nb.ipynb", IMPORTS, sampler)
    decision, _ = verified(path)
    o = by_spec(decision)["sample_update"]
    assert o.status == FAIL and "IndexError" in o.detail and "cell 2, line 3" in o.detail


# ---------------------------------------------------------------- decide on records alone
@pytest.fixture(scope="module")
def correct_records():
    _, records = verified(CASES / "correct_mse_keep.py")
    return list(records)


def test_decide_is_a_function_of_the_records(correct_records):
    a, b = decide(correct_records, {}), decide(list(correct_records), {})
    assert a.exit_status == b.exit_status == 0 and a.outcomes == b.outcomes


def test_unexpected_or_malformed_records_cannot_be_verified(correct_records):
    forged = correct_records + [("verdict", {"all": "pass"})]
    assert decide(forged, {}).exit_status == 2 and "unexpected record" in (decide(forged, {}).cannot_verify or "")
    bad = [r if r.kind != "net" else ("net", dict(r.fields, x="zeros")) for r in correct_records]
    assert decide(bad, {}).exit_status == 2 and "malformed" in (decide(bad, {}).cannot_verify or "")


@pytest.mark.parametrize("cut", [0, 1, 3, 40, 100, -20, -1])
def test_any_prefix_of_a_stream_is_never_a_pass(correct_records, cut):
    """A truncated run (a hang, os._exit) leaves specs undecided.

    What is decided from a prefix is no pass of more.
    """
    assert len(correct_records) > 120
    decision = decide(correct_records[:cut], {})
    assert decision.exit_status == 2
    assert not any(o.status == FAIL for o in decision.outcomes)


def test_the_law_check_rejects_a_planted_deviation(correct_records):
    """sample_law holds the samples to gaussian_gam_law at a false-alarm rate of 1e-6 per check.

    Swapping the
    gam = 1 and gam = 2 outputs (the laws differ by a few percent in scale) is rejected at the same n."""
    laws = [i for i, r in enumerate(correct_records) if r.kind == "law_output"]
    assert len(laws) == 2
    swapped = list(correct_records)
    swapped[laws[0]], swapped[laws[1]] = correct_records[laws[1]], correct_records[laws[0]]
    o = by_spec(decide(swapped, {}))["sample_law"]
    assert o.status == FAIL and "variance" in o.detail


def test_the_coefficient_check_rejects_a_tiny_planted_step_error(correct_records):
    """Scaling every yield of the probe runs by (1 + 1e-3) — far below any plot's resolution.

    Fails the update.
    """
    changed = []
    for r in correct_records:
        if r.kind == "yield" and r.fields.get("phase") == "sample" and isinstance(r.fields.get("value"), torch.Tensor):
            r = ("yield", dict(r.fields, value=r.fields["value"] * (1 + 1e-3)))
        changed.append(r)
    d = by_spec(decide(changed, {}))
    assert d["sample_update"].status == FAIL or d["sample_yields"].status == FAIL


# ---------------------------------------------------------------- through the sandbox and the command line
@pytest.mark.parametrize("name,code", [("correct_hand_recompute.ipynb", 0), ("mutant_step_sign.ipynb", 1)])
def test_the_command_line(name, code, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ddpm.verify", str(CASES / name), "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == code, out.stderr[-2000:]
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["course"] == "6.S183"
    assert [o["spec"] for o in report["outcomes"]] == list(SPECS_S183)


def test_the_course_can_be_forced(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ddpm.verify", str(CASES / "correct_mse_keep.py"), "--course", "02460", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["course"] == "02460" and out.returncode == 2


OWN_SIGMA = """def training_loop(loader, model, schedule, epochs=10000, lr=1e-3):
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(epochs):
        for x0 in loader:
            optimizer.zero_grad()
            sigma = schedule.sigmas[torch.randint(len(schedule), (x0.shape[0],))].unsqueeze(1)
            eps = torch.randn_like(x0)
            loss = torch.nn.functional.mse_loss(model(x0 + sigma * eps, SIGMA), eps)
            yield loss.item()
            loss.backward()
            optimizer.step()
"""


@pytest.mark.parametrize("told,spec", [("sigma", None), ("sigma ** 2", "loss_sigma")])
def test_levels_drawn_by_the_code_itself(tmp_path, told, spec):
    """sigma drawn with randint on schedule.sigmas (no sample_batch).

    The levels are recognised as the schedule's.
    """
    path = write_notebook(tmp_path, "nb.ipynb", IMPORTS, OWN_SIGMA.replace("SIGMA", told))
    outcomes = by_spec(verified(path)[0])
    failed = [k for k in SPECS_S183 if k.startswith("loss_") and outcomes[k].status != PASS]
    assert failed == ([spec] if spec else []), [(k, outcomes[k].detail) for k in failed]


@pytest.mark.parametrize(
    "extra,code",
    [
        ("        look = model.predict_eps(xt * 0.5, sig.to(xt))\n", 0),
        ("        eps = eps + 0.1 * model.predict_eps(xt * 0.5, sig.to(xt))\n", 1),
    ],
)
def test_extra_network_calls(tmp_path, extra, code):
    """More calls are fine when the result is the same; an extra answer that enters the samples is named."""
    text = (CASES / "correct_mse_keep.py").read_text()
    anchor = "        eps = model.predict_eps(xt, sig.to(xt))\n"
    path = tmp_path / "nb.py"
    path.write_text(text.replace(anchor, anchor + extra))
    decision, _ = verified(path)
    assert decision.exit_status == code
    if code:
        assert "enters the samples" in by_spec(decision)["sample_network_call"].detail
    else:
        assert any("do not enter the samples" in n for n in decision.notes)


def test_a_level_without_a_network_call_is_not_held_to_the_step(tmp_path):
    """The network sees the x of the step before and the last step reuses the previous answer: the states
    come from the yields, and the last level has no evaluation to hold its step to. That step is left to
    sample_network_call (which names the stale x), never an internal error of the verifier."""
    text = (CASES / "mutant_network_at_previous_x.py").read_text()
    anchor = "        eps = model.predict_eps(x_seen, sig.to(xt))\n"
    path = tmp_path / "nb.py"
    path.write_text(text.replace(anchor, anchor[:-1] + " if i < len(sigmas) - 2 else eps\n"))
    decision, _ = verified(path)
    assert decision.exit_status == 1 and decision.cannot_verify is None
    o = by_spec(decision)["sample_network_call"]
    assert o.status == FAIL and "the x of the step before" in o.detail


def test_a_start_drawn_another_way_with_the_same_law_passes(tmp_path):
    text = (CASES / "correct_mse_keep.py").read_text()
    path = tmp_path / "nb.py"
    path.write_text(
        text.replace(
            "model.rand_input(batchsize).to(accelerator.device) * sigmas[0] if xt is None",
            "torch.randn(batchsize, 2, dtype=torch.float64) * sigmas[0] if xt is None",
        )
    )
    decision, _ = verified(path)
    assert decision.exit_status == 0 and any("not model.rand_input" in n for n in decision.notes)


@pytest.mark.parametrize(
    "source,words",
    [
        ("from accelerate.utils import set_seed\n", "set_seed comes from accelerate.utils.set_seed"),
        ("sigmas_10 = schedule.sample_sigmas(10)\n", "sigmas_10 is set by a top-level statement"),
    ],
)
def test_what_the_verifier_cannot_give_is_cannot_verify(tmp_path, source, words):
    """A name from an import that fails here, or from a top-level statement never run, is exit 2.

    Not a bug.
    """
    use = "set_seed(0)" if "set_seed" in source else "xt = xt * sigmas_10[0] / sigmas_10[0]"
    sampler = (
        "def samples(model, sigmas, xt=None, gam=1., batchsize=1):\n"
        f"    xt = model.rand_input(batchsize) * sigmas[0] if xt is None else xt\n    {use}\n"
        "    for s, s_next in pairwise(sigmas):\n        xt = xt - (s - s_next) * model.predict_eps(xt, s)\n"
        "        yield xt\n"
    )
    path = write_notebook(tmp_path, "nb.ipynb", IMPORTS, source, sampler)
    decision, _ = verified(path)
    assert decision.exit_status == 2 and words in decision.cannot_verify
    assert not any(o.status == FAIL for o in decision.outcomes)
