"""The helpers of tests/e2e/conftest.py (agora-hello processes, the raw HTTP client) under a
stable module name, for the tests of this directory.

pytest imports every conftest.py under the one module name "conftest", replacing the previous
one each time, so `from conftest import X` would see whichever subdirectory's conftest.py was
loaded last. This loads ../conftest.py once as the module `agora_e2e_conftest` (the name
gateway/gwtest.py uses too) and re-exports its public names.
"""

import importlib.util
import os
import sys


def _load():
    name = "agora_e2e_conftest"
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


globals().update({k: v for k, v in vars(_load()).items() if not k.startswith("__")})
