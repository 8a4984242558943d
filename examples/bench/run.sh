#!/bin/sh
# Regenerates the side-by-side figures and plots of the README's
# "Performance" section: gospool and real uWSGI 2.0, same load, same run.
# Needs Go, python3 and uWSGI (apt-get install uwsgi-core uwsgi-plugin-python3).
# The spool directories are made under $TMPDIR (default /tmp): say which
# filesystem that is when you quote the numbers (df -T "${TMPDIR:-/tmp}").
set -e
cd "$(dirname "$0")"
go build -o "${TMPDIR:-/tmp}/gospool-bench" ../../cmd/gospool
bin="${TMPDIR:-/tmp}/gospool-bench"
df -T "${TMPDIR:-/tmp}" | tail -1
echo "== paced, 200 tasks/s, Python producers on both sides"
"$bin" bench --rate 200 --tasks 2000 --python --against-uwsgi --plot paced-200.svg
echo "== back to back, Python producers on both sides"
"$bin" bench --tasks 4000 --python --against-uwsgi --plot back-to-back.svg
echo "== back to back, Go producers for gospool"
"$bin" bench --tasks 4000 --against-uwsgi
