# Hangs as it is imported.
while True:
    pass
