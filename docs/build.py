#!/usr/bin/env python3
"""Build the API reference and fail on anything undocumented.

  build.py build --doxygen D --doxyfile F --include DIR --output OUT [--depfile D]
      Runs doxygen over DIR (HTML and man pages into OUT) and fails when:
      doxygen warns (undocumented type, macro, function, parameter or return
      value; malformed comment), a header has no @file comment (doxygen
      silently skips the members of an undocumented file), an NK_API
      function got no page of its own, or docs/mainpage.md does not list a
      header. The man pages in OUT/man/man3 are the ones `meson install`
      installs: one real page per public name (see man_pages()).
  build.py selftest --doxygen D --doxyfile F
      Shows that each of those faults, planted in a small header tree, fails
      the build, that a fully documented tree passes, and that a function
      page left a `.so` stub, or a stub whose target is missing, fails it.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))
import test_api  # noqa: E402  (the NK_API declarations of the headers)

_FILE_CMD = re.compile(r'/\*\*.*?[@\\]file\b', re.S)


def build(doxygen, doxyfile, include_dir, output, quiet=False,
          mainpage=os.path.join(HERE, 'mainpage.md'), strict=True):
    """Return the list of problems (empty when the reference is complete)."""
    include_dir = os.path.abspath(include_dir)
    os.makedirs(output, exist_ok=True)
    problems = []
    for path in test_api.headers(include_dir):
        with open(path, encoding='utf-8') as f:
            if not _FILE_CMD.search(f.read()):
                problems.append('%s: no /** @file ... */ comment, so doxygen '
                                'would skip its undocumented members'
                                % os.path.relpath(path, include_dir))

    # The main page lists the headers: a new one needs its line there.
    with open(mainpage, encoding='utf-8') as f:
        listed = f.read()
    for path in test_api.headers(os.path.join(include_dir, 'netkit')):
        rel = os.path.relpath(path, include_dir).replace(os.sep, '/')
        if rel not in listed and rel != 'netkit/export.h':
            problems.append('%s is not listed in docs/mainpage.md' % rel)

    with open(doxyfile, encoding='utf-8') as f:
        config = f.read()
    log = os.path.join(output, 'warnings.log')
    # Later assignments win: point the configuration at this tree.
    config += '\n'.join([
        '',
        'INPUT = "%s" "%s"' % (mainpage, include_dir),
        'USE_MDFILE_AS_MAINPAGE = "%s"' % mainpage,
        'STRIP_FROM_PATH = "%s" "%s"' % (include_dir, os.path.dirname(mainpage)),
        'STRIP_FROM_INC_PATH = "%s"' % include_dir,
        'INCLUDE_PATH = "%s"' % include_dir,
        'OUTPUT_DIRECTORY = "%s"' % os.path.abspath(output),
        'WARN_LOGFILE = "%s"' % log,
        # Not strict: doxygen finishes the pages whatever it warns about.
        '' if strict else 'WARN_AS_ERROR = NO',
        '',
    ])
    # Pages of names that are gone must not survive in the output.
    shutil.rmtree(os.path.join(output, 'man', 'man3'), ignore_errors=True)
    p = subprocess.run([doxygen, '-'], input=config, universal_newlines=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.stdout.strip() and not quiet:
        print(p.stdout.rstrip())
    warnings = ''
    if os.path.exists(log):
        with open(log, encoding='utf-8') as f:
            warnings = f.read().strip()
    if warnings:
        problems.append('doxygen warnings:\n' + warnings)
    if p.returncode != 0:
        problems.append('doxygen failed with exit status %d' % p.returncode)

    man3 = os.path.join(output, 'man', 'man3')
    if os.path.isdir(man3):
        man_pages(man3)
    problems += man_problems(man3, [name for _, kind, name in
                                    test_api.declarations(include_dir)
                                    if kind == 'function'])
    return problems


# Doxygen writes the documentation of each function, macro, typedef and
# enum into its header's page (tcp.h.3) and gives each name a one-line
# `.so man3/tcp.h.3` stub. `man -l` cannot follow such a stub, a stub names
# no section of its target, and field stubs (on_close.3, user.3, ...) would
# take common names in share/man. So each stub of a public name (nk_*,
# NK_*) becomes a page of its own, cut from its header's page; header pages
# are renamed netkit.3 and netkit_<header>.3 (netkit_tcp.3); every other
# stub is removed. What is left is exactly what `meson install` installs.
_STUB = re.compile(r'\.so\s+(\S+)\s*$')
_FONT = re.compile(r'\\f[BCIPR]|\\&')


def stub_target(path):
    """The target of a `.so` page (relative to the man root), or None."""
    with open(path, encoding='utf-8', errors='replace') as f:
        m = _STUB.match(f.read())
    return m.group(1) if m else None


def _plain(text):
    return _FONT.sub('', text)


def _member_name(title):
    """The name a detailed section (`.SS "..."`) documents."""
    t = _plain(title)
    for pattern in (r'#define (\w+)', r'\(\*\s*(\w+)\)', r'^enum (\w+)',
                    r'(\w+) \(', r'(\w+)\s*$'):
        m = re.search(pattern, t)
        if m:
            return m.group(1)
    return None


def _sections(page):
    """[(title, body lines)] of the page's `.SS` sections."""
    out, title, body = [], None, []
    for line in page.splitlines():
        if line.startswith('.SS ') or line.startswith('.SH '):
            if title is not None:
                out.append((title, body))
            title, body = (line[4:].strip('"'), []) if line.startswith('.SS ') else (None, [])
        elif title is not None:
            body.append(line)
    if title is not None:
        out.append((title, body))
    return out


def _find_member(name, page):
    """(synopsis, description lines, NAME line text) for name in a header
    page, or None: its detailed section, the enum that lists it, or its
    summary line (a typedef with a brief only has no detailed section)."""
    sections = _sections(page)
    for title, body in sections:
        if _member_name(title) == name:
            return title, body, _brief(body)
    for title, body in sections:
        for i, line in enumerate(body[:-1]):
            if title.startswith('enum ') and line == r'\fB\fI%s \fP\fP' % name:
                return title, body, _brief(body[i + 1:i + 2])
    lines = page.splitlines()
    for i, line in enumerate(lines):
        if line.startswith('.RI "') and re.search(r'\\fB%s\\fP' % name, line):
            brief = []
            if i + 2 < len(lines) and lines[i + 1] == '.br' and lines[i + 2].startswith('.RI "'):
                brief = ['.PP', lines[i + 2][5:].rstrip('" ')]
            return line[5:].rstrip('" '), brief, _brief(brief)
    return None


def _brief(description):
    """The first sentence of a description, for the NAME line (a macro's
    value, between .nf and .fi, is not one)."""
    text, verbatim = [], False
    for line in description:
        verbatim = (verbatim or line == '.nf') and line != '.fi'
        if not verbatim and not line.startswith('.') and 'Value:' not in line:
            text.append(line)
    text = _plain(' '.join(text)).strip()
    return re.split(r'(?<=\.) ', text, maxsplit=1)[0] if text else ''


def _header_page_name(page_file):
    """netkit.h.3 -> netkit.3, tcp.h.3 -> netkit_tcp.3."""
    base = page_file[:-len('.h.3')]
    return 'netkit.3' if base == 'netkit' else 'netkit_' + base + '.3'


def man_pages(man3):
    """Turn doxygen's man3 directory into the installed set (see above)."""
    files = sorted(os.listdir(man3))
    pages = {}
    for f in files:
        if f.endswith('.3') and stub_target(os.path.join(man3, f)) is None:
            with open(os.path.join(man3, f), encoding='utf-8') as fh:
                pages[f] = fh.read()
    headers = {f: p for f, p in pages.items() if f.endswith('.h.3')}
    for f in files:
        path = os.path.join(man3, f)
        target = stub_target(path)
        if target is None:
            continue
        name = f[:-2]
        os.remove(path)
        if not re.match(r'(nk|NK)_', name):
            continue
        hdr = os.path.basename(target)
        for candidate in ([hdr] if hdr in headers else []) + sorted(headers):
            found = _find_member(name, headers[candidate])
            if found:
                break
        else:
            continue  # man_problems() names a function left without a page
        synopsis, description, brief = found
        th = re.match(r'\.TH "([^"]*)" 3 (.*)$', headers[candidate].splitlines()[0])
        with open(path, 'w', encoding='utf-8') as fh:
            fh.write('\n'.join([
                '.TH "%s" 3 %s' % (name, th.group(2)), '.ad l', '.nh',
                '.SH NAME', '%s \\- %s' % (name, brief or th.group(1)),
                '.SH SYNOPSIS', '.nf', '\\fB#include <%s>\\fP' % th.group(1), '.PP',
                synopsis, '.fi', '.SH DESCRIPTION'] + description + [
                '.SH "SEE ALSO"', '\\fB%s\\fP(3)' % _header_page_name(candidate)[:-2],
                '']))
    for f in headers:
        os.rename(os.path.join(man3, f), os.path.join(man3, _header_page_name(f)))
    os.utime(man3)  # the directory is a build output: newer than its inputs


def man_problems(man3, functions):
    """Each public function has a real page; no page is a `.so` stub whose
    target is missing from this man3 directory."""
    problems = []
    for name in functions:
        path = os.path.join(man3, name + '.3')
        if not os.path.exists(path):
            problems.append('%s has no man page' % name)
        elif stub_target(path):
            problems.append('%s.3 is a .so stub, not a page' % name)
    if os.path.isdir(man3):
        root = os.path.dirname(man3)
        for f in sorted(os.listdir(man3)):
            target = stub_target(os.path.join(man3, f))
            if target and not os.path.isfile(os.path.join(root, target)):
                problems.append('man3/%s is a .so stub of %s, which is missing' % (f, target))
    return problems


GOOD = '''/**
 * @file netkit/good.h
 * @brief A documented header.
 */
#include "netkit/export.h"
/** @brief A documented macro. */
#define NK_GOOD 1
/**
 * @brief A documented function.
 * @param x Any value.
 * @return @p x.
 */
NK_API int nk_good(int x);
'''
EXPORT = '''/**
 * @file netkit/export.h
 * @brief The export marker.
 */
/** @brief Marks a public function. */
#define NK_API
'''
FAULTS = {
    'undocumented function': ('netkit/good.h', GOOD + 'NK_API int nk_bare(int x);\n',
                              'nk_bare'),
    'undocumented parameter': ('netkit/good.h', GOOD +
                               '/** @brief Half documented. @param a A. @return 0. */\n'
                               'NK_API int nk_half(int a, int b);\n', 'nk_half'),
    'undocumented return value': ('netkit/good.h', GOOD +
                                  '/** @brief No return. @param a A. */\n'
                                  'NK_API int nk_noret(int a);\n', 'nk_noret'),
    'undocumented macro': ('netkit/good.h', GOOD + '#define NK_BARE 2\n', 'NK_BARE'),
    'header missing from the main page': ('netkit/unlisted.h', GOOD.replace(
        'good', 'unlisted').replace('GOOD', 'UNLISTED'), 'unlisted.h'),
    'header without @file': ('netkit/nofile.h', '/* plain */\n#include "netkit/export.h"\n'
                             '/** @brief Doc. @param x X. @return 0. */\n'
                             'NK_API int nk_nofile(int x);\n', 'nofile.h'),
}


def selftest_man(man3):
    """The man page checks fail on a planted stub; return the failures."""
    failed = 0
    page = os.path.join(man3, 'nk_good.3')
    with open(page, encoding='utf-8') as f:
        real = f.read()
    ok = real.startswith('.TH "nk_good" 3') and 'A documented function' in real
    print('%s - nk_good.3 is a page of its own' % ('ok' if ok else 'not ok'))
    failed += not ok
    plants = {
        'a function page that is a .so stub': ('nk_good.3', '.so man3/netkit_good.3\n'),
        'a .so stub whose target is missing': ('NK_GONE.3', '.so man3/good.h.3\n'),
    }
    for what, (name, text) in sorted(plants.items()):
        path = os.path.join(man3, name)
        saved = open(path, encoding='utf-8').read() if os.path.exists(path) else None
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        problems = man_problems(man3, ['nk_good'])
        if any(name in p for p in problems):
            print('ok - %s fails the docs build' % what)
        else:
            print('not ok - %s does not fail the docs build (%s)' % (what, problems))
            failed += 1
        if saved is None:
            os.remove(path)
        else:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(saved)
    return failed


def selftest(a):
    failed = 0
    tmp = tempfile.mkdtemp(prefix='netkit-docs-')
    try:
        def tree(name, extra=None):
            inc = os.path.join(tmp, name, 'include')
            os.makedirs(os.path.join(inc, 'netkit'))
            for rel, text in [('netkit/export.h', EXPORT), ('netkit/good.h', GOOD)] + \
                    ([extra] if extra else []):
                with open(os.path.join(inc, rel), 'w', encoding='utf-8') as f:
                    f.write(text)
            return inc, os.path.join(tmp, name, 'out')

        mainpage = os.path.join(tmp, 'mainpage.md')
        with open(mainpage, 'w', encoding='utf-8') as f:
            f.write('# Test {#mainpage}\n\nnetkit/good.h netkit/nofile.h\n')
        inc, out = tree('good')
        problems = build(a.doxygen, a.doxyfile, inc, out, quiet=True,
                         mainpage=mainpage)
        if problems:
            print('not ok - a documented tree passes:\n' + '\n'.join(problems))
            failed += 1
        else:
            print('ok - a documented tree passes')
        failed += selftest_man(os.path.join(out, 'man', 'man3'))
        for i, (what, (rel, text, needle)) in enumerate(sorted(FAULTS.items())):
            inc, out = tree('fault%d' % i, (rel, text))
            problems = build(a.doxygen, a.doxyfile, inc, out, quiet=True,
                             mainpage=mainpage)
            if problems and needle in '\n'.join(problems):
                print('ok - %s fails the docs build' % what)
            else:
                print('not ok - %s does not fail the docs build (%s)'
                      % (what, problems))
                failed += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('mode', choices=['build', 'selftest'])
    ap.add_argument('--doxygen', required=True)
    ap.add_argument('--doxyfile', required=True)
    ap.add_argument('--include')
    ap.add_argument('--output')
    ap.add_argument('--depfile', help='for the build system: the headers read')
    ap.add_argument('--strict', action='store_true',
                    help='doxygen warnings fail the build too')
    a = ap.parse_args()
    if a.mode == 'selftest':
        return selftest(a)
    if not a.include or not a.output:
        ap.error('build needs --include and --output')
    problems = build(a.doxygen, a.doxyfile, a.include, a.output,
                     strict=a.strict)
    if a.depfile:
        test_api.write_depfile(a.depfile, os.path.join(a.output, 'man', 'man3'),
                               a.include)
    warned = [p for p in problems if p.startswith('doxygen warnings')]
    if not a.strict:
        # A user's doxygen may warn where the project's does not: the pages
        # are still right, so only `meson compile docs` (strict) fails.
        for p in warned:
            print('docs: warning: ' + p)
            problems.remove(p)
    for p in problems:
        print('docs: ' + p)
    if problems:
        print('docs: FAILED: %d problems' % len(problems))
        return 1
    print('docs: %s/html/index.html and %s/man/man3 written, %s'
          % (a.output, a.output,
             'with the doxygen warnings above' if warned else 'no warnings'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
