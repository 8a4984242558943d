// Package ini reads uWSGI ini files the way uWSGI 2.0.21 does, so that
// `gospool run --ini app.ini` takes a team's existing uWSGI configuration.
//
// Load returns the options of one section, in the order uWSGI assembles
// them; Parse maps the ones gospool understands to a Config and reports the
// others in Config.Unsupported (less the Ignored ones, which mean nothing
// for gospool).
//
// # What Load reads
//
// The rules below were checked against uWSGI 2.0.21 (Debian's build) with
// --show-config, --strict and print =; the package tests repeat the
// comparison when uwsgi is installed.
//
//   - "app.ini" reads [uwsgi]; "app.ini:name" reads [name]. The name is cut
//     at the last colon, and "app.ini:" reads [uwsgi].
//   - Lines are split at the first '='. Keys and values lose the spaces,
//     tabs and carriage returns around them; nothing else. Quotes are kept,
//     and a ';' or '#' after a value is part of the value.
//   - A line whose first non-blank byte is ';' or '#' is a comment; a line
//     starting with '[' opens a section (its last byte is dropped, whatever it
//     is). A key with no '=' has the value "" (uWSGI's flags read it as true).
//   - Keys are case-sensitive and '_' is not '-'. uWSGI 2.0 looks ini keys up
//     exactly, so it ignores "Master" and "spooler_processes" (try --strict);
//     so does gospool, and Hint says what was probably meant (also for a
//     key one or two typos away from a known option). The one-letter
//     command line forms (p, s, b, Q) are not ini keys either.
//   - Magic variables are expanded over the whole raw file first, keys,
//     sections and comments included: %p (the real path; a symlink keeps its
//     own name), %d (its directory, with a trailing slash), %s (the file
//     name), %n (the name up to the last dot), %e (after the last dot, or
//     ""), %c (the directory's name), %o (the path as written), %x (the
//     section if one was asked for), %0 to %9 (the parts of %d), %h, %u,
//     %g, %t, %T, %v (the working directory), %k (Go's CPU count, which
//     follows the affinity mask where uWSGI counts online CPUs), %[ and %%.
//     The capitals %O %P %S %D %N %E %C %X describe the first file read.
//     "%(" is kept for placeholders, and any other "%c" becomes nothing,
//     so a '%' at the end of a line joins the next line to it, as in uWSGI.
//     %V, %U, %G, %i, %j and %J are errors where they are used.
//   - ini = path:section and include = file.ini read the file at that place
//     in the order. A relative path is relative to the working directory, not
//     to the including file: write ini = %dother.ini for that. "ini = :name"
//     reads section name of the file read last (an included one, if any).
//     inherit = file.ini appends the file's options after everything else.
//     A file that includes itself, directly or not, is an error (uWSGI
//     recurses until it crashes).
//   - set = name=value adds the option name; set-placeholder and set-ph add a
//     value for %(name) only.
//   - After the files are read, over every value except those of ini,
//     include, set, set-placeholder, spooler-processes and plugin(s), which
//     uWSGI applies as it parses, and except those from inherit =: first
//     $(NAME) becomes the environment variable NAME, then %(name) becomes the
//     value of the first option or placeholder called name (a later one
//     too). A replaced value is scanned again, from its second byte. An unset
//     variable or an unknown name stays as written, as in uWSGI (not ""). A
//     value that keeps referring to itself is an error (uWSGI loops forever).
//   - A file without the section is an error naming the file (uWSGI warns).
//   - Load reads on after a bad line, and Parse after a bad value, so that
//     every mistake in the files is reported at once, each naming its file
//     and line.
//
// # What Load does not do
//
// These are errors, because ignoring them would change what the rest of the
// file means: @(file) values, placeholder arithmetic such as %(n + 1), config
// logic (for, for-glob, for-times, for-readline, if-env, if-exists, if-opt,
// if-file, if-dir, if-reload, if-plugin, if-hostname and their if-not- forms,
// endif, endfor), other config formats (yaml, json, xml, sqlite, ldap,
// config), URLs and schemes (http://, exec://, fd://, data://, sym://,
// section://, call://) and stdin ("-") as config sources, inject-before and
// inject-after, and custom options (declare-option). Options from UWSGI_*
// environment variables are not read: Load reads files only. Which other
// options uWSGI applies at parse time (so without expansion) is not
// modelled: only the ones above.
package ini
