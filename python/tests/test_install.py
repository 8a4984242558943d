"""gospool.install() outside uWSGI: gospool's stand-in uwsgi and
uwsgidecorators modules, whose spool() is gospool.spool. (Under real uWSGI:
tests/test_uwsgi.py.)"""

import os
import sys

import support
from support import gospool


class TestInstallOutsideUWSGI(support.Case):
    def setUp(self):
        super().setUp()
        saved = {k: sys.modules.get(k) for k in ("uwsgi", "uwsgidecorators")}
        meta = list(sys.meta_path)

        def restore():
            sys.meta_path[:] = meta
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        self.addCleanup(restore)
        for k in saved:
            sys.modules.pop(k, None)
        self.dir = self.mkdir()

    def test_stand_in_modules(self):
        gospool.install(dirs=[self.dir])
        import uwsgi
        self.assertTrue(getattr(uwsgi, "__gospool_compat__", False))
        self.assertEqual(uwsgi.spoolers, (os.fsencode(os.path.realpath(self.dir)),))
        name = uwsgi.spool({b"a": b"1"})
        self.assertEqual(os.path.dirname(name), os.fsencode(os.path.realpath(self.dir)))
        self.assertEqual(self.read_file(os.fsdecode(name)), ([(b"a", b"1")], None))
        import uwsgidecorators

        @uwsgidecorators.spool
        def hello(args):
            return gospool.SPOOL_OK
        name = hello.spool(who="ada")
        pairs, _ = self.read_file(os.fsdecode(name))
        self.assertIn((b"ud_spool_func", b"hello"), pairs)
        self.assertIn((b"who", b"ada"), pairs)

    def test_stand_in_left_alone(self):
        gospool.install(dirs=[self.dir])
        import uwsgi
        uwsgi.spooler = print
        other = self.mkdir("other")
        gospool.install(dirs=[other])
        self.assertIs(sys.modules["uwsgi"], uwsgi)
        self.assertIs(uwsgi.spooler, print)
        self.assertEqual(os.path.dirname(uwsgi.spool({b"a": b"1"})), os.fsencode(os.path.realpath(other)))

    def test_environment(self):
        os.environ[gospool.ENV_SPOOLER_DIRS] = self.dir
        gospool.install()
        import uwsgi
        self.assertEqual(uwsgi.spoolers, (os.fsencode(os.path.realpath(self.dir)),))
        self.assertTrue(os.path.exists(uwsgi.spool({b"a": b"1"})))


if __name__ == "__main__":
    import unittest
    unittest.main()
