"""Modules a user server imports at start but does not use there, loaded on first use.

``rfc3987_syntax`` is the one that matters: jsonschema imports it for its ``iri`` and
``iri-reference`` format checks (jupyter-server -> jupyter_events -> jsonschema), and it
builds an Earley grammar when imported, about 0.8 s of CPU, for checks that no schema a
server validates at start asks for. Until then a stand-in takes its place in
``sys.modules``; the first use of any of its names imports the real module, so a check
that runs gives the same answer as before. Submodules import as usual; only a star
import of a deferred module would see its forwarders alone (nothing here does one).

Only the standard library is imported here: this runs before the server stack.
"""

import importlib.machinery
import importlib.util
import sys
import threading
import types

# Module name -> functions that other modules take by name at import
# (``from rfc3987_syntax import is_valid_syntax``): the stand-in offers them as
# forwarders, so the import binds a forwarder instead of loading the real module.
DEFERRED = {"rfc3987_syntax": ("is_valid_syntax", "parse")}

_lock = threading.RLock()


class DeferredModule(types.ModuleType):
    """Stands in for a module until one of its names is used, then imports the real one."""

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # introspection (copy, pickle, help) loads nothing
        return getattr(load_real(self.__name__), name)


def load_real(name: str) -> types.ModuleType:
    """Import the real module ``name`` in place of its stand-in, once; returns it."""
    with _lock:
        current = sys.modules.get(name)
        if current is not None and not isinstance(current, DeferredModule):
            return current
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        module = importlib.util.module_from_spec(spec)
        # As the import system does: in sys.modules before it runs (its relative
        # imports need it), and gone again if it fails.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            if current is not None:
                sys.modules[name] = current
            else:
                sys.modules.pop(name, None)
            raise
        return module


def forwarder(module_name: str, function_name: str):
    def call(*args, **kwargs):
        return getattr(load_real(module_name), function_name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function_name
    call.__module__ = module_name
    return call


def stand_in(name: str, functions, spec=None) -> DeferredModule:
    module = DeferredModule(name, f"Deferred import of {name}: loaded on first use.")
    if spec is not None and spec.submodule_search_locations is not None:
        # A package's submodules stay importable (``import pkg.sub``) without loading it.
        module.__path__ = list(spec.submodule_search_locations)
    for function_name in functions:
        setattr(module, function_name, forwarder(name, function_name))
    return module


def defer_unused_imports(deferred: dict = DEFERRED) -> list[str]:
    """Put stand-ins in ``sys.modules`` for installed modules of ``deferred`` that are not
    imported yet; returns their names. Modules that are not installed are left alone, so
    an import of them fails as it would have."""
    done = []
    with _lock:
        for name, functions in deferred.items():
            spec = None if name in sys.modules else importlib.machinery.PathFinder.find_spec(name)
            if spec is None:
                continue
            sys.modules[name] = stand_in(name, functions, spec)
            done.append(name)
    return done


def is_deferred(name: str) -> bool:
    """Whether ``name`` is still a stand-in (its real module not loaded)."""
    return isinstance(sys.modules.get(name), DeferredModule)
