# The WebAssembly port raises filesystem OSErrors with Emscripten's errno numbers (ENOENT = 44) while
# its own `errno` module (and every real MicroPython board) uses the standard ones (ENOENT = 2). mpremote
# relies on the standard numbers, so the virtual board's ROM translates them at the filesystem calls.
import builtins
import os

_MAP = {44: 2, 20: 17, 54: 20, 31: 21, 28: 22, 2: 13, 51: 28, 8: 9, 29: 5, 63: 1, 55: 39, 69: 30}


def _wrap(f):
    def call(*a, **k):
        try:
            return f(*a, **k)
        except OSError as e:
            n = e.args[0] if e.args else None
            if n in _MAP:
                raise OSError(_MAP[n]) from None
            raise

    return call


builtins.open = _wrap(builtins.open)
for _name in ("stat", "listdir", "ilistdir", "remove", "mkdir", "rmdir", "rename", "chdir", "statvfs"):
    if hasattr(os, _name):
        setattr(os, _name, _wrap(getattr(os, _name)))

# Listing: real boards report sizes in ilistdir; the WebAssembly port does not. The interpreter's own
# folders (tmp, home, dev, proc) and the board ROM are hidden from the root listing like a board's
# firmware partition.
_HIDDEN = ("tmp", "home", "dev", "proc", "rom")
_ilistdir = os.ilistdir
_stat = os.stat


def _is_root(path):
    return path in ("/", "") and os.getcwd() == "/" or path == "/"


def ilistdir(path=""):
    base = path if path else os.getcwd()
    for entry in _ilistdir(path) if path else _ilistdir():
        name = entry[0]
        if _is_root(path) and name in _HIDDEN:
            continue
        full = (base.rstrip("/") + "/" + name) if base != "/" else "/" + name
        size = 0
        if entry[1] == 0x8000:
            size = _stat(full)[6]
        yield (name, entry[1], entry[2] if len(entry) > 2 else 0, size)


def listdir(path=""):
    return [e[0] for e in ilistdir(path)]


os.ilistdir = ilistdir
os.listdir = listdir
