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
Written from what uWSGI 2.0.21's module observably does (the spool files it
writes and what its spooler callable did with them, captured in
python/testdata/uwsgi-decorators), not from its source; only the public
names are the same.

``spool``, ``spoolforever`` and ``spoolraw`` (bare, or with
``pass_arguments=True``) make calling the function spool a task instead,
with the same keys, values and key order as uWSGI's module (listed in the
comment that opens the uwsgidecorators half of this file). The decorated
object's ``.spool`` and the function's own ``.spool`` do the same; ``.f``
is the function.
Decorating registers ``spooler_functions[f.__name__]``; making the module
sets ``uwsgi.spooler = manage_spool_request``.

``manage_spool_request(env)`` finds the function by ``ud_spool_func``,
calls it with the unpickled ``args``/``kwargs`` (pass_arguments) or with
the task's dict (keys and values decoded from UTF-8), and returns
``int(ud_spool_ret)`` when the task has one, else ``int()`` of what the
function returned (so None raises TypeError: a retry). It differs from
uWSGI's in two cases where uWSGI's retries the task forever, so no working
setup depends on them:

1. A value (or key) that is not valid UTF-8, e.g. a binary ``body`` or a
   pickled value spooled without pass_arguments, reaches the function as the
   bytes it is. uwsgidecorators raises UnicodeDecodeError and retries the
   task forever (unbit/uwsgi#2080, #2261). A valid UTF-8 value reaches it as
   the same str as under uWSGI.
2. A task without ``ud_spool_func``, or naming a function that is not
   registered, is SPOOL_IGNORE with a log line on standard error.
   uwsgidecorators raises KeyError and retries it forever (unbit/uwsgi#543,
   e.g. a raw ``uwsgi.spool()`` mixed with the decorators).

The other decorators, for code that uses them at import time:
``postfork`` functions are run once by the runner after the imports (there
is no fork; uWSGI runs them in its spooler for modules imported before the
fork, e.g. with shared-import, though not for spooler-import modules, which
are imported after it); ``postfork(N)`` for worker N > 0 never runs.
``signal``, ``rpc`` and ``erlang`` register through the ``uwsgi`` module,
which warns; ``timer``, ``rbtimer``, ``cron``, ``filemon`` and ``harakiri``
leave the function as it is and warn. ``mule``, ``muleloop``, ``mulemsg``
and ``farm`` functions never run (there are no mules: ``mule_id()`` is 0)
and stay callable; calling a ``mulefunc`` raises. ``lock`` runs the call
under ``uwsgi.lock()``, and in the runner (a spooler) skips it and returns
None, as uWSGI does in its spooler; ``thread`` starts a daemon thread per
call. Importing this module never raises; a spool decorator raises
RuntimeError when ``uwsgi.opt`` has no ``'spooler'`` (here it always has
one unless code removes it; uWSGI's raises an Exception without a
configured spooler).

python/tests/test_compat_live.py runs the same calls against the installed
uwsgidecorators inside uWSGI and against this module, and compares.

``task_info()`` tells a task which spool task it runs: ``TaskInfo(name,
attempt)`` (attempt 1 is the first run), or None outside a task.
"""

import collections
import functools
import importlib.abc
import importlib.util
import os
import pickle
import sys
import threading
import types
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
                 "erlang_register_process", "signal", "add_ms_timer", "set_user_harakiri"):
        setattr(m, name, noop(name))

    def mule_msg(*args, **kwargs):
        raise RuntimeError("uwsgi.mule_msg: gospool has no mules")

    m.mule_msg = mule_msg
    m.in_farm = lambda *a: False
    return m


# ------------------------------------------------------- uwsgidecorators
#
# What a decorated call spools (the wire format the spooler side reads back;
# pinned by the files real uwsgidecorators wrote, python/testdata/uwsgi-decorators):
#
#   ud_spool_func  the function's __name__: the spooler side looks it up
#   ud_spool_ret   "-2" (@spool) or "-1" (@spoolforever): the code the task
#                  ends with, whatever the function returns; absent for
#                  @spoolraw, where the function's return is the code
#   then, without pass_arguments, the call's first positional dict and its
#   keyword arguments (later keys overwrite earlier ones in place);
#   with pass_arguments, the _LIFTED_KEYWORDS the call has, then ``args``
#   and ``kwargs``: the rest of the call, pickled.
#
# str keys and values become UTF-8 bytes; other values are handed to
# uwsgi.spool as they are (and refused there unless bytes-like).

# Keyword arguments of a pass_arguments call that are options of the task
# (uwsgi.spool's special keys, and message_dict) rather than arguments of the
# function: spooled as keys of their own, in this order.
_LIFTED_KEYWORDS = ("message_dict", "spooler", "priority", "at", "body")

# The three spool decorators differ only in the ud_spool_ret they write.
_DECORATOR_RESULT = {
    "spool": str(SPOOL_OK),  # one run, then done
    "spoolforever": str(SPOOL_RETRY),  # run again after every run
    "spoolraw": None,  # the function's return value decides
}

# The "service" of the pickled dict a mulefunc call sends to a mule, by
# which mule_msg_dispatcher tells such messages from others.
_MULEFUNC_SERVICE = "uwsgi_mulefunc"


def _to_wire(value):
    """str as UTF-8 bytes; anything else unchanged."""
    return value.encode("utf-8") if isinstance(value, str) else value


def _from_wire(value):
    """Valid UTF-8 bytes as str; anything else (invalid UTF-8 included,
    see the module docstring, difference 1) unchanged."""
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


class _SpooledFunction:
    """A function under @spool, @spoolforever or @spoolraw.

    Calling it enqueues a task naming the function instead of running it;
    ``.spool(...)`` and the function's own ``.spool(...)`` (the spelling
    uWSGI's documentation uses) do the same. ``.f`` is the function itself, for a
    direct call.
    """

    def __init__(self, f, pass_arguments, result, uwsgi):
        self.f = f
        self.pass_arguments = pass_arguments
        self._result = result
        self._uwsgi = uwsgi
        f.spool = self.spool

    def _task(self, args, kwargs):
        task = {"ud_spool_func": self.f.__name__}
        if self._result is not None:
            task["ud_spool_ret"] = self._result
        if self.pass_arguments:
            for key in _LIFTED_KEYWORDS:
                if key in kwargs:
                    task[key] = kwargs.pop(key)
            task["args"] = pickle.dumps(args)
            task["kwargs"] = pickle.dumps(kwargs)
        else:
            # Only the first positional counts, and a dict in it may
            # overwrite ud_spool_func and ud_spool_ret (uWSGI does the same).
            if args:
                task.update(args[0])
            task.update(kwargs)
        return {_to_wire(k): _to_wire(v) for k, v in task.items()}

    def __call__(self, *args, **kwargs):
        # uwsgi.spool is looked up now, not at decoration: code (and tests)
        # may replace it after the task module was imported.
        return self._uwsgi.spool(self._task(args, kwargs))

    spool = __call__

    def __repr__(self):
        return "<spooled function %s>" % self.f.__name__


def _make_uwsgidecorators(uwsgi):
    """A new ``uwsgidecorators`` module bound to the given ``uwsgi`` module.

    As importing uWSGI's module does, making it sets ``uwsgi.spooler`` (to
    manage_spool_request), ``uwsgi.post_fork_hook`` and
    ``uwsgi.mule_msg_hook``.
    """
    spooler_functions = {}  # ud_spool_func -> the undecorated function
    mule_functions = {}  # mulefunc name -> the undecorated function
    postfork_chain = []  # run in order by postfork_chain_hook
    public = {}

    def export(obj):
        public[obj.__name__] = obj
        return obj

    # ---- spooling: the decorators

    def spool_decorator(name, result):
        def decorate(f=None, pass_arguments=False):
            def wrap(func):
                if "spooler" not in uwsgi.opt:
                    raise RuntimeError("@%s %s: no spooler is configured (uwsgi.opt has no 'spooler'), so the task "
                                       "would never run; start it under a spooler (gospool run --spooler DIR)"
                                       % (name, getattr(func, "__name__", func)))
                spooled = _SpooledFunction(func, pass_arguments, result, uwsgi)
                spooler_functions[func.__name__] = func
                return spooled

            # @spool and @spool(pass_arguments=True) both work.
            return wrap if f is None else wrap(f)

        decorate.__name__ = name
        decorate.__doc__ = ("@%s or @%s(pass_arguments=True): calling the function spools it as a task; "
                            "ud_spool_ret %s." % (name, name, "absent" if result is None else repr(result)))
        return export(decorate)

    for name, result in _DECORATOR_RESULT.items():
        spool_decorator(name, result)

    @export
    def spool_decorate(f=None, pass_arguments=False, ud_spool_ret=None):
        """The general spool decorator: @spoolraw's behaviour, or with
        ud_spool_ret (e.g. "-2") a fixed result as @spool's."""
        if ud_spool_ret is not None:
            ud_spool_ret = str(ud_spool_ret)
        return spool_decorator("spool_decorate", ud_spool_ret)(f, pass_arguments)

    # ---- running: the spooler callable

    @export
    def manage_spool_request(env):
        """Run the task's function, named by ``ud_spool_func``, and return
        its spooler code: ``ud_spool_ret`` when the task has one, else the
        function's return value, as an int."""
        task = {_from_wire(k): v for k, v in env.items()}
        call = None
        if "args" in task:
            # A pass_arguments task; both halves are required.
            args = pickle.loads(task.pop("args"))
            kwargs = pickle.loads(task.pop("kwargs"))
            call = (args, kwargs)
        task = {k: _from_wire(v) for k, v in task.items()}
        name = task.get("ud_spool_func")
        func = spooler_functions.get(name) if isinstance(name, str) else None
        if func is None:
            if name is None:
                why = "has no ud_spool_func"
            else:
                why = "names ud_spool_func %r, which no imported module registered (registered: %s)" % (
                    name, ", ".join(sorted(spooler_functions)) or "none")
            _warn("task %s %s: SPOOL_IGNORE (uwsgidecorators would raise KeyError and retry it forever)"
                  % (task.get("spooler_task_name"), why))
            return SPOOL_IGNORE
        returned = func(task) if call is None else func(*call[0], **call[1])
        # Read after the call: a raw function may have set it in its env.
        return int(task.get("ud_spool_ret", returned))

    # ---- after the fork: postfork, mules and farms

    @export
    def postfork_chain_hook():
        """Run the @postfork functions, in the order they were decorated."""
        for hook in list(postfork_chain):
            hook()

    @export
    def postfork(f_or_worker):
        """@postfork runs the function once the process is set up;
        @postfork(N) only in worker N (never here, where worker_id() is 0;
        0 means every process)."""

        def register(f, worker):
            def run_if_mine():
                if worker == 0 or worker == uwsgi.worker_id():
                    return f()

            postfork_chain.append(run_if_mine)
            return f

        if callable(f_or_worker):
            return register(f_or_worker, 0)
        return lambda f: register(f, f_or_worker)

    @export
    def mulefunc(f_or_mule):
        """@mulefunc or @mulefunc(N): calling the function sends it to a
        mule. gospool has no mules: the call raises (uwsgi.mule_msg)."""

        def bind(f, mule):
            mule_functions[f.__name__] = f

            @functools.wraps(f)
            def send_to_mule(*args, **kwargs):
                message = {"service": _MULEFUNC_SERVICE, "func": f.__name__, "args": args, "kwargs": kwargs}
                return uwsgi.mule_msg(pickle.dumps(message), mule)

            return send_to_mule

        if callable(f_or_mule):
            return bind(f_or_mule, 0)
        return lambda f: bind(f, f_or_mule)

    @export
    def mule_msg_dispatcher(message):
        """Run the mulefunc a message from send_to_mule names; None for any
        other message."""
        msg = pickle.loads(message)
        if isinstance(msg, dict) and msg.get("service") == _MULEFUNC_SERVICE:
            return mule_functions[msg["func"]](*msg["args"], **msg["kwargs"])
        return None

    class _MuleOnly:
        """A function bound to a mule or a farm. There are no mules here
        (mule_id() is 0), so it never runs."""

        def __init__(self, f, where):
            self.f = f
            self.where = where

        def __call__(self):
            return None

    for alias in ("mule_brain", "mule_brainloop", "mulemsg_loop", "farm_loop"):
        public[alias] = _MuleOnly

    def mule_decorator(name):
        def decorate(where, **options):
            return lambda f: f

        decorate.__name__ = name
        decorate.__doc__ = "@%s(...): the function would run in a uWSGI mule or farm; never here." % name
        return export(decorate)

    for name in ("mule", "muleloop", "mulemsg"):
        mule_decorator(name)

    @export
    def farm(name=None, **options):
        """@farm(name): the function would run in the farm's mules; never
        here."""
        return lambda f: f

    # ---- signals: registered with the uwsgi module (which warns), or inert

    @export
    def get_free_signal():
        """The lowest uWSGI signal number (0-255) not registered yet."""
        free = next((n for n in range(256) if not uwsgi.signal_registered(n)), None)
        if free is None:
            raise RuntimeError("every uWSGI signal number (0-255) is registered: none left for a new handler")
        return free

    @export
    def signal(num, target="", **options):
        """@signal(num): handle uWSGI signal num (uwsgi.register_signal)."""

        def decorate(f):
            uwsgi.register_signal(num, target, f)
            return f

        return decorate

    def never_called(label, feature):
        # gospool does not run uWSGI's timers, crons or file monitors: the
        # decoration succeeds, so that the module imports, and says so.
        def decorate(f):
            _warn("%s %s: gospool runs no uWSGI %s; it will never be called"
                  % (label, getattr(f, "__name__", f), feature))
            return f

        return decorate

    @export
    def timer(secs, **options):
        """@timer(secs): every secs seconds under uWSGI; never here."""
        return never_called("@timer(%r)" % (secs,), "timers")

    @export
    def rbtimer(secs, **options):
        """@rbtimer(secs): as @timer; never here."""
        return never_called("@rbtimer(%r)" % (secs,), "timers")

    @export
    def cron(minute, hour, day, month, dayweek, **options):
        """@cron(minute, hour, day, month, dayweek): never here."""
        return never_called("@cron", "crons")

    @export
    def filemon(fsobj, **options):
        """@filemon(path): when path changes under uWSGI; never here."""
        return never_called("@filemon(%r)" % (fsobj,), "file monitors")

    @export
    def rpc(name):
        """@rpc(name): register an RPC function (uwsgi.register_rpc)."""

        def decorate(f):
            uwsgi.register_rpc(name, f)
            return f

        return decorate

    @export
    def erlang(name):
        """@erlang(name): register an Erlang process (uwsgi.erlang_register_process)."""

        def decorate(f):
            uwsgi.erlang_register_process(name, f)
            return f

        return decorate

    # ---- call wrappers

    @export
    def lock(f):
        """@lock: the call holds uwsgi.lock(). In a spooler (here: the
        runner) the call does nothing and returns None, as under uWSGI."""

        @functools.wraps(f)
        def locked(*args, **kwargs):
            if uwsgi.i_am_the_spooler():
                return None
            uwsgi.lock()
            try:
                return f(*args, **kwargs)
            finally:
                uwsgi.unlock()

        return locked

    @export
    def thread(f):
        """@thread: each call runs the function in a new daemon thread and
        returns the function."""

        @functools.wraps(f)
        def start(*args, **kwargs):
            Thread(target=f, args=args, kwargs=kwargs, daemon=True).start()
            return f

        return start

    @export
    def harakiri(seconds):
        """@harakiri(seconds): under uWSGI, a call running longer kills the
        process. Not enforced here: use gospool run --spooler-harakiri."""

        def decorate(f):
            _warn("@harakiri(%r) %s: not enforced by gospool (use gospool run --spooler-harakiri)"
                  % (seconds, getattr(f, "__name__", f)))
            return f

        return decorate

    m = types.ModuleType("uwsgidecorators", "gospool's stand-in for uWSGI's uwsgidecorators (gospool.compat)")
    m.__gospool_compat__ = True
    for name, obj in public.items():
        if obj is not _MuleOnly:
            obj.__module__ = "uwsgidecorators"
        setattr(m, name, obj)
    # Module attributes that code written for uWSGI's module may reach.
    m.spooler_functions = spooler_functions
    m.mule_functions = mule_functions
    m.postfork_chain = postfork_chain
    m.uwsgi = uwsgi
    m.pickle = pickle
    m.partial = functools.partial
    m.Thread = Thread
    m.sys = sys

    uwsgi.spooler = manage_spool_request
    uwsgi.post_fork_hook = postfork_chain_hook
    uwsgi.mule_msg_hook = mule_msg_dispatcher
    return m
