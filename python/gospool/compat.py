"""uWSGI's ``uwsgi`` and ``uwsgidecorators`` modules, for code that runs
outside uWSGI: the gospool Python runner (``python3 -m gospool.runner``)
installs them so that a task module written for uWSGI's spooler imports and
runs unchanged, and a program outside uWSGI can spool with the decorators.

    make_modules(spooler=False, dirs=None) -> (uwsgi, uwsgidecorators)
        new module objects, not installed anywhere (making the second one
        sets the first one's ``spooler``, as importing uwsgidecorators does);
    install_modules(spooler=False, dirs=None, replace=False) -> uwsgi
        puts a new ``uwsgi`` module into sys.modules and makes
        ``uwsgidecorators`` importable: as in uWSGI, importing it (the first
        time) sets ``uwsgi.spooler``, so the last of ``import
        uwsgidecorators`` and ``uwsgi.spooler = f`` wins. A ``uwsgi`` module
        that is not ours (the real one, inside uWSGI) is left alone, and
        returned, unless replace=True.

``dirs`` are the spool directories (``uwsgi.spoolers``, ``uwsgi.opt['spooler']``);
by default GOSPOOL_SPOOLER_DIRS (colon-separated), else GOSPOOL_SPOOLER_DIR.

The ``uwsgi`` module
--------------------
SPOOL_OK = -2, SPOOL_RETRY = -1, SPOOL_IGNORE = 0; ``spool(d)`` and
``send_to_spooler(d)`` take a dict as uWSGI does (the first positional, else
the keyword arguments; ``ValueError("The argument of spooler callable must be
a dictionary")`` otherwise) and hand it to ``gospool.spool``, imported when
first called; ``spooler``, the task callable, which user code assigns (absent
until then, as in uWSGI); ``i_am_the_spooler()``, True in the runner and None
elsewhere (not False), as uWSGI; ``opt``, with str keys and bytes values as
uWSGI's, holding ``'spooler'`` (one bytes dir, or a list of them when there
are several, as uWSGI) and ``'master'``; ``spoolers``, the tuple of bytes dirs;
``parsefile(path)``; ``masterpid()`` (never 0 here, so that code checking
for a master goes on); ``worker_id()`` and ``mule_id()`` (0, as in a uWSGI
spooler); ``spooler_pid()``, ``spooler_pids()``, ``spooler_jobs()``,
``spooler_get_task(path)``, ``set_spooler_frequency(n)``, ``log(msg)``,
``lock()``/``unlock()`` (process-local). uWSGI's signal, timer, cron, file
monitor, RPC and harakiri registrations are accepted and do nothing, with a
warning on standard error: gospool does not run them. ``mule_msg`` raises.

The ``uwsgidecorators`` module
------------------------------
``spool``, ``spoolforever`` and ``spoolraw``, bare or with
``pass_arguments=True``, produce exactly the keys, values and key order that
uWSGI 2.0.21's uwsgidecorators produces (``ud_spool_func``, ``ud_spool_ret``
"-2" / "-1" / absent, the first positional dict and the keyword arguments
merged in, or with pass_arguments the lifted ``message_dict``, ``spooler``,
``priority``, ``at`` and ``body`` plus ``args`` and ``kwargs`` pickled with the
default protocol; str keys and values encoded as UTF-8, anything else passed
through), register ``spooler_functions[f.__name__]`` and set
``uwsgi.spooler = manage_spool_request``. Both the decorated object and
``f.spool`` enqueue. The test fixtures in python/testdata/uwsgi-decorators
are files written by the real module.

``manage_spool_request`` dispatches like uwsgidecorators (keys decoded,
``args``/``kwargs`` unpickled, values decoded, ``f(*args, **kwargs)`` or
``f(env)``, ``int(ud_spool_ret)`` if present else ``int(f's return)``), with
these differences, which fix uWSGI's known traps and break nobody, since the
uWSGI behaviour in each case is a task retried forever:

1. A value (or key) that is not valid UTF-8, e.g. a binary ``body`` or a
   pickled value spooled without pass_arguments, reaches the function as the
   bytes it is. uwsgidecorators raises UnicodeDecodeError and retries the
   task forever (unbit/uwsgi#2080, #2261). A valid UTF-8 value reaches it as
   the same str as under uWSGI.
2. A task without ``ud_spool_func``, or naming a function that is not
   registered, is SPOOL_IGNORE with a log line on standard error.
   uwsgidecorators raises KeyError and retries it forever (unbit/uwsgi#543,
   e.g. a raw ``uwsgi.spool()`` mixed with the decorators).

Other differences: importing this ``uwsgidecorators`` never raises (uWSGI's
raises without a master, and the decorators raise when no spooler is
configured; here ``'spooler'`` is always in ``uwsgi.opt``); ``postfork``
functions are run once by the runner after the imports (there is no fork;
uWSGI runs them in its spooler for modules imported before the fork, e.g.
with shared-import, though not for spooler-import modules, which are
imported after it; ``postfork(N)`` for worker N > 0 never runs);
``timer``, ``cron``, ``rbtimer``, ``filemon``, ``signal``, ``rpc``,
``erlang`` and ``harakiri`` decorate without effect and warn; ``mule``,
``muleloop``, ``mulemsg`` and ``farm`` functions never run (there are no
mules: ``mule_id()`` is 0); calling a ``mulefunc`` raises.

``task_info()`` tells a task which spool task it runs: ``TaskInfo(name,
attempt)`` (attempt 1 is the first run), or None outside a task.
"""

import collections
import importlib.abc
import importlib.util
import os
import pickle
import struct
import sys
import threading
import types
from functools import partial
from threading import Thread

SPOOL_OK = -2
SPOOL_RETRY = -1
SPOOL_IGNORE = 0

_PREFIX = b"uwsgi_spoolfile_on_"

TaskInfo = collections.namedtuple("TaskInfo", "name attempt")

_current = threading.local()


def task_info():
    """The TaskInfo of the task running in this thread, or None."""
    return getattr(_current, "info", None)


def _set_task_info(info):
    _current.info = info


def _warn(msg):
    try:
        sys.stderr.write("[gospool compat] %s\n" % msg)
        sys.stderr.flush()
    except Exception:
        pass


def _default_dirs():
    v = os.environ.get("GOSPOOL_SPOOLER_DIRS")
    if v:
        return [d for d in v.split(":") if d]
    v = os.environ.get("GOSPOOL_SPOOLER_DIR")
    if v:
        return [v]
    return []


def _fsencode(d):
    # uWSGI's uwsgi.spoolers are realpaths.
    return os.fsencode(os.path.realpath(d))


def _parse_spool_bytes(data):
    """The vars of a spool file as a dict (bytes keys and values), or None
    when they do not parse as uWSGI parses them. The body is ignored."""
    if len(data) < 4 or data[0] not in (0, 17):
        return None
    n = data[1] | (data[2] << 8)
    if len(data) < 4 + n:
        return None
    out = {}
    off, end = 4, 4 + n
    while off < end:
        if end - off < 3:
            return None
        klen = data[off] | (data[off + 1] << 8)
        off += 2
        if klen == 0 or off + klen > end:
            return None
        key = bytes(data[off:off + klen])
        off += klen
        if end - off < 2:
            return None
        vlen = data[off] | (data[off + 1] << 8)
        off += 2
        if off + vlen > end:
            return None
        out[key] = bytes(data[off:off + vlen])
        off += vlen
    return out


def make_modules(spooler=False, dirs=None):
    """Make new ``uwsgi`` and ``uwsgidecorators`` module objects.

    spooler: what ``uwsgi.i_am_the_spooler()`` says (True, or None).
    dirs: the spool directories (str or bytes); by default from the
    environment (GOSPOOL_SPOOLER_DIRS, GOSPOOL_SPOOLER_DIR).
    """
    if dirs is None:
        dirs = _default_dirs()
    bdirs = tuple(_fsencode(d) for d in dirs)
    uwsgi = _make_uwsgi(bool(spooler), bdirs)
    ud = _make_uwsgidecorators(uwsgi)
    return uwsgi, ud


def install_modules(spooler=False, dirs=None, replace=False):
    """Put a compat ``uwsgi`` module into sys.modules, make compat
    ``uwsgidecorators`` importable, and return the ``uwsgi`` module.

    A ``uwsgi`` module that is not ours (the real one, inside uWSGI) is left
    alone, and returned, unless replace is true.
    """
    cur = sys.modules.get("uwsgi")
    if cur is not None and not getattr(cur, "__gospool_compat__", False) and not replace:
        return cur
    if dirs is None:
        dirs = _default_dirs()
    uwsgi = _make_uwsgi(bool(spooler), tuple(_fsencode(d) for d in dirs))
    sys.modules["uwsgi"] = uwsgi
    sys.modules.pop("uwsgidecorators", None)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _DecoratorsFinder)]
    sys.meta_path.insert(0, _DecoratorsFinder(uwsgi))
    return uwsgi


class _DecoratorsFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import uwsgidecorators`` build the compat module for the
    installed compat ``uwsgi``, at import time, as uWSGI's module has its
    side effects when imported."""

    def __init__(self, uwsgi):
        self.uwsgi = uwsgi

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "uwsgidecorators" or sys.modules.get("uwsgi") is not self.uwsgi:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin="gospool.compat")

    def create_module(self, spec):
        return _make_uwsgidecorators(self.uwsgi)

    def exec_module(self, module):
        pass


# ---------------------------------------------------------------- uwsgi


def _make_uwsgi(spooler, bdirs):
    m = types.ModuleType("uwsgi", "gospool's stand-in for uWSGI's uwsgi module (gospool.compat)")
    m.__gospool_compat__ = True
    m.SPOOL_OK = SPOOL_OK
    m.SPOOL_RETRY = SPOOL_RETRY
    m.SPOOL_IGNORE = SPOOL_IGNORE
    m.version = b"2.0.21"
    m.version_info = (2, 0, 21, 0, "gospool")
    m.numproc = 0
    m.spoolers = bdirs
    opt = {"master": b"true"}
    if len(bdirs) == 1:
        opt["spooler"] = bdirs[0]
    elif bdirs:
        opt["spooler"] = list(bdirs)
    else:
        # uwsgidecorators checks `'spooler' in uwsgi.opt`; spool() itself
        # reports a missing directory when called.
        opt["spooler"] = b""
    m.opt = opt
    m.post_fork_hook = None
    m.mule_msg_hook = None
    m.applications = None

    def spool(*args, **kwargs):
        # As uWSGI's py_uwsgi_send_spool: the first positional, if any, must
        # be a dict (further positionals and then the kwargs are ignored);
        # with no positional, the kwargs dict is used.
        if args:
            d = args[0]
        elif kwargs:
            d = kwargs
        else:
            d = None
        if not isinstance(d, dict):
            raise ValueError("The argument of spooler callable must be a dictionary")
        import gospool

        return gospool.spool(d)

    m.spool = spool
    m.send_to_spooler = spool

    def i_am_the_spooler():
        return True if spooler else None

    m.i_am_the_spooler = i_am_the_spooler

    def parsefile(path):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        return _parse_spool_bytes(data)

    m.parsefile = parsefile

    def masterpid():
        try:
            pid = int(os.environ.get("GOSPOOL_MASTER_PID", "0"))
        except ValueError:
            pid = 0
        return pid if pid > 0 else os.getppid()

    m.masterpid = masterpid
    m.worker_id = lambda: 0
    m.mule_id = lambda: 0

    def spooler_pid():
        return os.getpid() if spooler else 0

    m.spooler_pid = spooler_pid
    m.spooler_pids = lambda: [spooler_pid()] if bdirs else []

    def spooler_jobs():
        if not bdirs:
            return []
        out = []
        try:
            names = os.listdir(bdirs[0])
        except OSError:
            return []
        for name in names:
            if not name.startswith(_PREFIX):
                continue
            p = os.path.join(bdirs[0], name)
            if os.path.isfile(p) and os.access(p, os.R_OK | os.W_OK):
                out.append(p)
        return out

    m.spooler_jobs = spooler_jobs

    def spooler_get_task(path):
        if isinstance(path, bytes):
            raise TypeError("spooler_get_task() argument must be str, not bytes")
        d = parsefile(path)
        if d is None:
            return None
        task = {"spooler_task_name": path.encode()}
        task.update(d)
        return task

    m.spooler_get_task = spooler_get_task

    def set_spooler_frequency(freq):
        if not isinstance(freq, int):
            raise TypeError("an integer is required")
        return True

    m.set_spooler_frequency = set_spooler_frequency

    def log(msg):
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        sys.stderr.write("%s\n" % msg)
        sys.stderr.flush()
        return True

    m.log = log

    _lock = threading.RLock()

    def lock(num=0):
        _lock.acquire()

    def unlock(num=0):
        _lock.release()

    m.lock = lock
    m.unlock = unlock

    warned = set()

    def noop(name, result=None):
        def f(*args, **kwargs):
            if name not in warned:
                warned.add(name)
                _warn("uwsgi.%s%r: not supported by gospool; ignored" % (name, args))
            return result

        f.__name__ = name
        return f

    registered = set()

    def register_signal(num, target, func):
        registered.add(num)
        _warn("uwsgi.register_signal(%r, %r, %s): gospool runs no uWSGI signal handlers; it will never be called"
              % (num, target, getattr(func, "__name__", func)))

    m.register_signal = register_signal
    m.signal_registered = lambda num: num in registered
    for name in ("add_timer", "add_rb_timer", "add_cron", "add_file_monitor", "register_rpc",
                 "erlang_register_process", "signal", "add_ms_timer"):
        setattr(m, name, noop(name))
    # The @harakiri decorator calls it around every call: no warning.
    m.set_user_harakiri = lambda *a: None

    def mule_msg(*args, **kwargs):
        raise RuntimeError("uwsgi.mule_msg: gospool has no mules")

    m.mule_msg = mule_msg
    m.in_farm = lambda *a: False
    return m


# ------------------------------------------------------- uwsgidecorators


def _encode1(val):
    if isinstance(val, str):
        return val.encode("utf-8")
    return val


def _decode1(val):
    # uwsgidecorators decodes strictly; invalid UTF-8 stays bytes here (see
    # the module docstring, difference 1).
    if isinstance(val, bytes):
        try:
            return val.decode("utf-8")
        except UnicodeDecodeError:
            return val
    return val


def _make_uwsgidecorators(uwsgi):
    m = types.ModuleType("uwsgidecorators", "gospool's stand-in for uWSGI's uwsgidecorators (gospool.compat)")
    m.__gospool_compat__ = True
    m.uwsgi = uwsgi
    m.pickle = pickle
    m.partial = partial
    m.Thread = Thread
    m.sys = sys
    spooler_functions = {}
    mule_functions = {}
    postfork_chain = []
    m.spooler_functions = spooler_functions
    m.mule_functions = mule_functions
    m.postfork_chain = postfork_chain
    m._encode1 = _encode1
    m._decode1 = _decode1

    def _encode_to_spooler(vars):
        return dict((_encode1(K), _encode1(V)) for (K, V) in list(vars.items()))

    def _decode_from_spooler(vars):
        return dict((_decode1(K), _decode1(V)) for (K, V) in list(vars.items()))

    m._encode_to_spooler = _encode_to_spooler
    m._decode_from_spooler = _decode_from_spooler

    def get_free_signal():
        for signum in range(0, 256):
            if not uwsgi.signal_registered(signum):
                return signum
        raise Exception("No free uwsgi signal available")

    m.get_free_signal = get_free_signal

    def manage_spool_request(vars):
        vars = dict((_decode1(K), V) for (K, V) in list(vars.items()))
        if "args" in vars:
            for k in ("args", "kwargs"):
                vars[k] = pickle.loads(vars.pop(k))
        vars = _decode_from_spooler(vars)
        name = vars.get("ud_spool_func")
        f = spooler_functions.get(name) if isinstance(name, str) else None
        if f is None:
            task = vars.get("spooler_task_name")
            if name is None:
                why = "has no ud_spool_func"
            else:
                why = "names ud_spool_func %r, which no imported module registered (registered: %s)" % (
                    name, ", ".join(sorted(spooler_functions)) or "none")
            _warn("task %s %s: SPOOL_IGNORE (uwsgidecorators would raise KeyError and retry it forever)"
                  % (task, why))
            return uwsgi.SPOOL_IGNORE
        if "args" in vars:
            ret = f(*vars["args"], **vars["kwargs"])
        else:
            ret = f(vars)
        return int(vars.get("ud_spool_ret", ret))

    m.manage_spool_request = manage_spool_request

    def postfork_chain_hook():
        for f in postfork_chain:
            f()

    m.postfork_chain_hook = postfork_chain_hook
    uwsgi.spooler = manage_spool_request
    uwsgi.post_fork_hook = postfork_chain_hook

    class postfork(object):
        def __init__(self, f):
            if callable(f):
                self.wid = 0
                self.f = f
            else:
                self.f = None
                self.wid = f
            postfork_chain.append(self)

        def __call__(self, *args, **kwargs):
            if self.f:
                if self.wid > 0 and self.wid != uwsgi.worker_id():
                    return
                return self.f()
            self.f = args[0]

    class _spoolraw(object):
        def __call__(self, *args, **kwargs):
            arguments = self.base_dict.copy()
            if not self.pass_arguments:
                if len(args) > 0:
                    arguments.update(args[0])
                if kwargs:
                    arguments.update(kwargs)
            else:
                spooler_args = {}
                for key in ("message_dict", "spooler", "priority", "at", "body"):
                    if key in kwargs:
                        spooler_args.update({key: kwargs.pop(key)})
                arguments.update(spooler_args)
                arguments.update({"args": pickle.dumps(args), "kwargs": pickle.dumps(kwargs)})
            return uwsgi.spool(_encode_to_spooler(arguments))

        # For backward compatibility (uWSGI < 1.9.13)
        def spool(self, *args, **kwargs):
            return self.__class__.__call__(self, *args, **kwargs)

        def __init__(self, f, pass_arguments):
            if "spooler" not in uwsgi.opt:
                raise Exception("you have to enable the uWSGI spooler to use @%s decorator" % self.__class__.__name__)
            self.f = f
            spooler_functions[self.f.__name__] = self.f
            # For backward compatibility (uWSGI < 1.9.13)
            self.f.spool = self.__call__
            self.pass_arguments = pass_arguments
            self.base_dict = {"ud_spool_func": self.f.__name__}

    class _spool(_spoolraw):
        def __call__(self, *args, **kwargs):
            self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_OK)
            return _spoolraw.__call__(self, *args, **kwargs)

    class _spoolforever(_spoolraw):
        def __call__(self, *args, **kwargs):
            self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_RETRY)
            return _spoolraw.__call__(self, *args, **kwargs)

    def spool_decorate(f=None, pass_arguments=False, _class=_spoolraw):
        if not f:
            return partial(_class, pass_arguments=pass_arguments)
        return _class(f, pass_arguments)

    def spoolraw(f=None, pass_arguments=False):
        return spool_decorate(f, pass_arguments)

    def spool(f=None, pass_arguments=False):
        return spool_decorate(f, pass_arguments, _spool)

    def spoolforever(f=None, pass_arguments=False):
        return spool_decorate(f, pass_arguments, _spoolforever)

    class mulefunc(object):
        def __init__(self, f):
            if callable(f):
                self.fname = f.__name__
                self.mule = 0
                mule_functions[f.__name__] = f
            else:
                self.mule = f
                self.fname = None

        def real_call(self, *args, **kwargs):
            uwsgi.mule_msg(pickle.dumps({"service": "uwsgi_mulefunc", "func": self.fname,
                                         "args": args, "kwargs": kwargs}), self.mule)

        def __call__(self, *args, **kwargs):
            if not self.fname:
                self.fname = args[0].__name__
                mule_functions[self.fname] = args[0]
                return self.real_call
            return self.real_call(*args, **kwargs)

    def mule_msg_dispatcher(message):
        msg = pickle.loads(message)
        if msg["service"] == "uwsgi_mulefunc":
            return mule_functions[msg["func"]](*msg["args"], **msg["kwargs"])

    uwsgi.mule_msg_hook = mule_msg_dispatcher

    class rpc(object):
        def __init__(self, name):
            self.name = name

        def __call__(self, f):
            uwsgi.register_rpc(self.name, f)
            return f

    class farm_loop(object):
        def __init__(self, f, farm):
            self.f = f
            self.farm = farm

        def __call__(self):
            if uwsgi.mule_id() == 0:
                return
            if not uwsgi.in_farm(self.farm):
                return

    class farm(object):
        def __init__(self, name=None, **kwargs):
            self.name = name

        def __call__(self, f):
            postfork_chain.append(farm_loop(f, self.name))

    class mule_brain(object):
        def __init__(self, f, num):
            self.f = f
            self.num = num

        def __call__(self):
            # There are no mules: mule_id() is 0 and never equals num.
            if uwsgi.mule_id() == self.num:
                self.f()

    class mule_brainloop(mule_brain):
        pass

    class mule(object):
        def __init__(self, num):
            self.num = num

        def __call__(self, f):
            postfork_chain.append(mule_brain(f, self.num))

    class muleloop(mule):
        def __call__(self, f):
            postfork_chain.append(mule_brainloop(f, self.num))

    class mulemsg_loop(object):
        def __init__(self, f, num):
            self.f = f
            self.num = num

        def __call__(self):
            pass

    class mulemsg(object):
        def __init__(self, num):
            self.num = num

        def __call__(self, f):
            postfork_chain.append(mulemsg_loop(f, self.num))

    class signal(object):
        def __init__(self, num, **kwargs):
            self.num = num
            self.target = kwargs.get("target", "")

        def __call__(self, f):
            uwsgi.register_signal(self.num, self.target, f)
            return f

    class timer(object):
        def __init__(self, secs, **kwargs):
            self.num = kwargs.get("signum", get_free_signal())
            self.secs = secs
            self.target = kwargs.get("target", "")

        def __call__(self, f):
            _warn("@timer(%r) %s: gospool runs no uWSGI timers; it will never be called" % (self.secs, f.__name__))
            return f

    class cron(object):
        def __init__(self, minute, hour, day, month, dayweek, **kwargs):
            self.num = kwargs.get("signum", get_free_signal())
            self.minute = minute
            self.hour = hour
            self.day = day
            self.month = month
            self.dayweek = dayweek
            self.target = kwargs.get("target", "")

        def __call__(self, f):
            _warn("@cron %s: gospool runs no uWSGI crons; it will never be called" % f.__name__)
            return f

    class rbtimer(timer):
        def __call__(self, f):
            _warn("@rbtimer(%r) %s: gospool runs no uWSGI timers; it will never be called" % (self.secs, f.__name__))
            return f

    class filemon(object):
        def __init__(self, fsobj, **kwargs):
            self.num = kwargs.get("signum", get_free_signal())
            self.fsobj = fsobj
            self.target = kwargs.get("target", "")

        def __call__(self, f):
            _warn("@filemon(%r) %s: gospool runs no uWSGI file monitors; it will never be called"
                  % (self.fsobj, f.__name__))
            return f

    class erlang(object):
        def __init__(self, name):
            self.name = name

        def __call__(self, f):
            uwsgi.erlang_register_process(self.name, f)
            return f

    class lock(object):
        def __init__(self, f):
            self.f = f

        def __call__(self, *args, **kwargs):
            # ensure the spooler will not call it (as uwsgidecorators)
            if uwsgi.i_am_the_spooler():
                return
            uwsgi.lock()
            try:
                return self.f(*args, **kwargs)
            finally:
                uwsgi.unlock()

    class thread(object):
        def __init__(self, f):
            self.f = f

        def __call__(self, *args):
            t = Thread(target=self.f, args=args)
            t.daemon = True
            t.start()
            return self.f

    class harakiri(object):
        def __init__(self, seconds):
            self.s = seconds

        def real_call(self, *args, **kwargs):
            uwsgi.set_user_harakiri(self.s)
            r = self.f(*args, **kwargs)
            uwsgi.set_user_harakiri(0)
            return r

        def __call__(self, f):
            _warn("@harakiri(%r) %s: not enforced by gospool (use gospool run --spooler-harakiri)"
                  % (self.s, f.__name__))
            self.f = f
            return self.real_call

    for obj in (postfork, _spoolraw, _spool, _spoolforever, spool_decorate, spoolraw, spool, spoolforever,
                mulefunc, mule_msg_dispatcher, rpc, farm_loop, farm, mule_brain, mule_brainloop, mule, muleloop,
                mulemsg_loop, mulemsg, signal, timer, cron, rbtimer, filemon, erlang, lock, thread, harakiri):
        try:
            obj.__module__ = "uwsgidecorators"
        except (AttributeError, TypeError):
            pass
        setattr(m, obj.__name__, obj)
    return m
