#!/usr/bin/env python3
"""Build the API reference and fail on anything undocumented.

  build.py build --doxygen D --doxyfile F --include DIR --output OUT
      Runs doxygen over DIR (HTML and man pages into OUT) and fails when:
      doxygen warns (undocumented type, macro, function, parameter or return
      value; malformed comment), a header has no @file comment (doxygen
      silently skips the members of an undocumented file), an NK_API
      function got no page of its own, or docs/mainpage.md does not list a
      header.
  build.py selftest --doxygen D --doxyfile F
      Shows that each of those faults, planted in a small header tree, fails
      the build, and that a fully documented tree passes.
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
          mainpage=os.path.join(HERE, 'mainpage.md')):
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
        '',
    ])
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
    for hdr, kind, name in test_api.declarations(include_dir):
        if kind == 'function' and not os.path.exists(os.path.join(man3, name + '.3')):
            problems.append('%s (%s) has no page in the reference' % (name, hdr))
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
    a = ap.parse_args()
    if a.mode == 'selftest':
        return selftest(a)
    if not a.include or not a.output:
        ap.error('build needs --include and --output')
    problems = build(a.doxygen, a.doxyfile, a.include, a.output)
    for p in problems:
        print('docs: ' + p)
    if problems:
        print('docs: FAILED: %d problems' % len(problems))
        return 1
    print('docs: %s/html/index.html and %s/man/man3 written, no warnings'
          % (a.output, a.output))
    return 0


if __name__ == '__main__':
    sys.exit(main())
