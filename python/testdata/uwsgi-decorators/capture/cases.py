# The calls whose spool files are the fixtures: (case name, Python
# expression). `ud` is the ud_tasks module, `uwsgi` the uwsgi module.
CASES = [
    ("spool-dict", "ud.hello({'name': 'world', 'n': '1'})"),
    ("spool-dict-kwargs", "ud.hello({'a': '1', 'b': 'x'}, 'dropped positional', b='2', c='3')"),
    ("spool-kwargs-only", "ud.hello(x='y', text='h\\u00e9llo \\u2713')"),
    ("spool-method", "ud.hello.spool({'old': 'api'})"),
    ("spool-bytes-value", "ud.hello({'blob': b'\\xff\\x00\\x01', 'ok': b'plain'})"),
    ("spool-body", "ud.hello({'body': b'plain text body', 'k': 'v'})"),
    ("spool-override-func", "ud.hello({'k': 'v', 'ud_spool_ret': '-1'})"),
    ("spoolforever-dict", "ud.forever({'k': 'v'})"),
    ("spoolraw-ok", "ud.raw({'ret': '-2'})"),
    ("spoolraw-ignore", "ud.raw({'ret': '0'})"),
    ("spoolraw-none", "ud.raw({'ret': 'none'})"),
    ("args", "ud.send('alice@example.com', 'hello', retries=5, tags=['a', 'b'])"),
    ("args-special", "ud.send('bob', 'hi', at='4102444800', priority='3', retries=1)"),
    ("args-binary-body", "ud.send('carol', 'report', body=b'\\x00\\x01binary\\xff')"),
    ("args-str-body", "ud.poll(7, label='x', body='text body \\u2713')"),
    ("args-none", "ud.rawargs()"),
    ("args-binary", "ud.rawargs(b'\\xff\\xfe', data=bytearray(b'x'), n=None)"),
    ("raw-spool-no-func", "uwsgi.spool({b'task': b'resize', b'user': b'42'})"),
]
