#!/usr/bin/env python3
"""Use libnetkit the way other projects do, from a temporary install.

Each check installs the build (`meson install --destdir`) into its own
temporary directory, which is removed afterwards, so checks run in parallel
with each other and with the rest of the suite, need no root and leave the
system alone.

  install     the install holds exactly the headers, the libraries (with
              the SONAME link chain), netkit.pc and the CMake package
              (under share/cmake, searched on every system), and when
              doxygen is there man pages: a real one per public function
  headers     every header in include/ is installed; each compiles alone
              as C11 and C++ (-pedantic -Werror); netkit.h includes them
              all; a C++ program taking the address of every NK_API
              function links against the shared library (extern "C")
  pkgconfig   cc $(pkg-config --cflags --libs netkit): shared, and static
              with --static; both run
  cmake       find_package(netkit 0.1) gives netkit::netkit and
              netkit::netkit_static; incompatible versions are refused
  first-program  README's "A first program" (an echo server) built
              against the install with pkg-config, run once with
              LD_LIBRARY_PATH and once built with an rpath: it echoes on a
              free port and exits 0 on SIGTERM and SIGINT
  subproject  a meson project with libnetkit under subprojects/ and the
              wrap file of docs/: builds, runs, and contains no test,
              example or benchmark of libnetkit and installs nothing of it

Exit status 0 pass, 1 fail, 77 skip (a tool the check drives is missing).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
STRICT_C = ['-std=c11', '-pedantic', '-Wall', '-Wextra', '-Werror']
STRICT_CXX = ['-std=c++11', '-pedantic', '-Wall', '-Wextra', '-Werror']


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(cmd, env=None, cwd=None, expect_ok=True, quiet=False):
    """Run cmd and echo it; echo its output too unless quiet and it
    succeeded. Return (status, output)."""
    log('$ ' + ' '.join(shlex.quote(c) for c in cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, env=env, cwd=cwd)
    if p.stdout and not (quiet and p.returncode == 0):
        log(p.stdout.rstrip())
    if expect_ok and p.returncode != 0:
        raise Failure('exit status %d: %s' % (p.returncode, ' '.join(cmd)))
    return p.returncode, p.stdout


def check(cond, what):
    if not cond:
        raise Failure(what)
    log('ok - ' + what)


class Install:
    """A `meson install --destdir` of the build into a fresh directory."""

    def __init__(self, args, tmp):
        self.a = args
        self.destdir = os.path.join(tmp, 'dest')
        run(args.meson + ['install', '-C', args.build_root, '--no-rebuild',
                          '--destdir', self.destdir], quiet=True)
        self.prefix = self.dest(args.prefix)
        self.libdir = self.dest(os.path.join(args.prefix, args.libdir))
        self.includedir = self.dest(os.path.join(args.prefix, args.includedir))
        self.datadir = self.dest(os.path.join(args.prefix, args.datadir))
        self.mandir = self.dest(os.path.join(args.prefix, args.mandir))

    def dest(self, path):
        return os.path.join(self.destdir, os.path.abspath(path).lstrip('/'))


def sanitize_flags(a):
    return ['-fsanitize=' + a.sanitize] if a.sanitize not in ('', 'none') else []


def compile_c(a, out, src, flags, extra=()):
    run(a.cc + STRICT_C + sanitize_flags(a) + flags + ['-o', out, src] + list(extra))


def needed(path):
    _, out = run(['readelf', '-d', path], quiet=True)
    return re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', out)


def check_runs(exe, a, env=None, what=''):
    status, out = run([exe], env=env, expect_ok=False)
    check(status == 0 and out.strip().endswith('libnetkit ' + a.version),
          '%s runs and reports libnetkit %s' % (what or os.path.basename(exe), a.version))


def lib_env(libdir):
    env = dict(os.environ)
    env['LD_LIBRARY_PATH'] = libdir + (':' + env['LD_LIBRARY_PATH']
                                       if env.get('LD_LIBRARY_PATH') else '')
    return env


def public_functions(a, include_dir):
    sys.path.insert(0, os.path.dirname(HERE))
    import test_api  # tests/test_api.py: the NK_API declarations
    return test_api.declarations(include_dir)


# ---------------------------------------------------------------- install

def check_install(a, tmp):
    inst = Install(a, tmp)
    src_inc = os.path.join(a.source_root, 'include')
    real = 'libnetkit.so.' + a.version
    soname = 'libnetkit.so.' + a.major
    expected = {os.path.join(inst.includedir, os.path.relpath(os.path.join(r, f), src_inc))
                for r, _, fs in os.walk(src_inc) for f in fs if f.endswith('.h')}
    expected |= {os.path.join(inst.libdir, f) for f in (
        real, soname, 'libnetkit.so', 'libnetkit.a', 'pkgconfig/netkit.pc')}
    expected |= {os.path.join(inst.datadir, 'cmake', 'netkit', f) for f in (
        'netkitConfig.cmake', 'netkitConfigVersion.cmake')}
    got = {os.path.join(r, f) for r, ds, fs in os.walk(inst.destdir)
           for f in fs + [d for d in ds if os.path.islink(os.path.join(r, d))]}
    man3 = os.path.join(inst.mandir, 'man3')
    pages = {p for p in got if os.path.dirname(p) == man3}
    got -= pages
    if a.man_pages:
        check_man_pages(a, man3)
    else:
        check(not pages, 'no man page is installed without doxygen')
    check(got == expected, 'the install holds exactly %d files' % len(expected)
          if got == expected else 'unexpected install: extra %s, missing %s'
          % (sorted(got - expected), sorted(expected - got)))
    def lib(name):
        return os.path.join(inst.libdir, name)
    check(os.path.islink(lib('libnetkit.so')) and os.readlink(lib('libnetkit.so')) == soname
          and os.path.islink(lib(soname)) and os.readlink(lib(soname)) == real
          and os.path.isfile(lib(real)) and not os.path.islink(lib(real)),
          'libnetkit.so -> %s -> %s' % (soname, real))
    _, out = run(['readelf', '-d', lib(real)], quiet=True)
    check('Library soname: [%s]' % soname in out, 'the installed library\'s SONAME is ' + soname)
    return 0


def check_man_pages(a, man3):
    """The installed man3 pages: one real page per public function, no
    stub left dangling (docs/build.py's checks, on the install)."""
    sys.path.insert(0, os.path.join(a.source_root, 'docs'))
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import build as docs_build  # docs/build.py
    functions = [name for _, kind, name in
                 public_functions(a, os.path.join(a.source_root, 'include'))
                 if kind == 'function']
    problems = docs_build.man_problems(man3, functions)
    check(not problems, 'a man page of its own for each of the %d public functions'
          % len(functions) if not problems else 'man pages: ' + '; '.join(problems))


# ---------------------------------------------------------------- headers

def check_headers(a, tmp):
    inst = Install(a, tmp)
    src_inc = os.path.join(a.source_root, 'include')
    src = sorted(os.path.relpath(os.path.join(r, f), src_inc)
                 for r, _, fs in os.walk(src_inc) for f in fs if f.endswith('.h'))
    got = sorted(os.path.relpath(os.path.join(r, f), inst.includedir)
                 for r, _, fs in os.walk(inst.includedir) for f in fs)
    check(src == got, 'installed headers are exactly include/: %s'
          % ' '.join(got) if src == got else
          'installed headers %s differ from include/ %s' % (got, src))

    inc = ['-I' + inst.includedir]
    for h in src:
        tu = os.path.join(tmp, 'alone.c')
        with open(tu, 'w') as f:
            f.write('#include <%s>\ntypedef int nk_alone_check;\n' % h)
        run(a.cc + STRICT_C + inc + ['-fsyntax-only', tu])
        log('ok - %s compiles alone as C11' % h)
        if a.cxx:
            tu = os.path.join(tmp, 'alone.cpp')
            with open(tu, 'w') as f:
                f.write('#include <%s>\ntypedef int nk_alone_check;\n' % h)
            run(a.cxx + STRICT_CXX + inc + ['-fsyntax-only', tu])
            log('ok - %s compiles alone as C++11' % h)

    # The umbrella header reaches every public header.
    _, deps = run(a.cc + inc + ['-MM', '-MT', 'x', os.path.join(inst.includedir, 'netkit.h')])
    reached = {os.path.relpath(os.path.normpath(d), inst.includedir)
               for d in deps.replace('\\\n', ' ').split()[1:]}
    missing = [h for h in src if h not in reached]
    check(not missing, 'netkit.h includes every public header'
          + (' (missing: %s)' % ' '.join(missing) if missing else ''))

    if not a.cxx:
        log('# no C++ compiler: extern "C" linkage not checked')
        return
    # Every NK_API function has C linkage: a C++ program that takes their
    # addresses links against the C library only if the names are unmangled.
    decls = public_functions(a, inst.includedir)
    cpp = os.path.join(tmp, 'linkage.cpp')
    with open(cpp, 'w') as f:
        f.write('#include <netkit.h>\n')
        for h in src:
            f.write('#include <%s>\n' % h)
        f.write('#include <cstdio>\n'
                'typedef void (*nk_any_fn)();\n'
                'static const nk_any_fn fns[] = {\n')
        for _, kind, name in decls:
            if kind == 'function':
                f.write('    reinterpret_cast<nk_any_fn>(&%s),\n' % name)
        f.write('    0};\n'
                'int main() {\n'
                '    unsigned n = 0;\n'
                '    for (const nk_any_fn *p = fns; *p; p++) n++;\n'
                '    std::printf("%u functions\\n", n);\n'
                '    return n == sizeof fns / sizeof fns[0] - 1 ? 0 : 1;\n'
                '}\n')
    exe = os.path.join(tmp, 'linkage')
    run(a.cxx + STRICT_CXX + sanitize_flags(a) + inc + ['-o', exe, cpp,
        '-L' + inst.libdir, '-lnetkit'])
    status, _ = run([exe], env=lib_env(inst.libdir), expect_ok=False)
    check(status == 0, 'C++ links all %d public functions (extern "C" guards)'
          % sum(1 for d in decls if d[1] == 'function'))


# ---------------------------------------------------------------- pkg-config

def check_pkgconfig(a, tmp):
    if not shutil.which('pkg-config'):
        log('# SKIP pkg-config is not installed')
        return SKIP
    inst = Install(a, tmp)
    env = dict(os.environ)
    # Only the temporary install is searched; paths get the DESTDIR prefix.
    env['PKG_CONFIG_LIBDIR'] = os.path.join(inst.libdir, 'pkgconfig')
    env.pop('PKG_CONFIG_PATH', None)
    env['PKG_CONFIG_SYSROOT_DIR'] = inst.destdir

    def pkg(*args):
        _, out = run(['pkg-config'] + list(args) + ['netkit'], env=env)
        return shlex.split(out)

    _, ver = run(['pkg-config', '--modversion', 'netkit'], env=env)
    check(ver.strip() == a.version, 'pkg-config --modversion netkit is ' + a.version)
    status, _ = run(['pkg-config', '--exists', 'netkit >= ' + a.version], env=env,
                    expect_ok=False)
    check(status == 0, 'pkg-config --exists "netkit >= %s" holds' % a.version)
    status, _ = run(['pkg-config', '--exists', 'netkit >= %d.0' % (int(a.major) + 1)],
                    env=env, expect_ok=False)
    check(status != 0, 'pkg-config --exists "netkit >= %d.0" does not' % (int(a.major) + 1))
    cflags = pkg('--cflags')
    check('-I' + inst.includedir in cflags, 'pkg-config --cflags points at the install')

    src = os.path.join(HERE, 'consumer.c')
    shared = os.path.join(tmp, 'consumer_shared')
    compile_c(a, shared, src, cflags, pkg('--libs'))
    check(needed(shared).count('libnetkit.so.' + a.major) == 1,
          'the shared consumer needs libnetkit.so.%s (the SONAME)' % a.major)
    check_runs(shared, a, lib_env(inst.libdir), 'the shared consumer')

    # --static: Libs.private must be enough to link the archive.
    libs = pkg('--static', '--libs')
    check('-lnetkit' in libs, 'pkg-config --static --libs names -lnetkit')
    libs = [x for l in libs for x in
            (['-Wl,-Bstatic', '-lnetkit', '-Wl,-Bdynamic'] if l == '-lnetkit' else [l])]
    static = os.path.join(tmp, 'consumer_static')
    compile_c(a, static, src, pkg('--static', '--cflags'), libs)
    check(not any(n.startswith('libnetkit') for n in needed(static)),
          'the static consumer does not need libnetkit.so')
    check_runs(static, a, None, 'the static consumer (no LD_LIBRARY_PATH)')
    return 0


# ---------------------------------------------------------------- CMake

def check_cmake(a, tmp):
    cmake = shutil.which('cmake')
    if not cmake:
        log('# SKIP cmake is not installed')
        return SKIP
    inst = Install(a, tmp)
    config = os.path.join(inst.datadir, 'cmake', 'netkit')
    check(os.path.isfile(os.path.join(config, 'netkitConfig.cmake'))
          and os.path.isfile(os.path.join(config, 'netkitConfigVersion.cmake')),
          'netkitConfig.cmake and netkitConfigVersion.cmake are installed')

    flags = ' '.join(STRICT_C[1:] + sanitize_flags(a))
    # With the system search paths off, tools are given by absolute path.
    ninja = shutil.which('ninja') or shutil.which('ninja-build')
    make = shutil.which('make')
    if ninja:
        generator = ['-G', 'Ninja', '-DCMAKE_MAKE_PROGRAM=' + ninja]
    elif make:
        generator = ['-G', 'Unix Makefiles', '-DCMAKE_MAKE_PROGRAM=' + make]
    else:
        log('# SKIP neither ninja nor make is installed')
        return SKIP
    compiler = shutil.which(a.cc[-1]) or a.cc[-1]

    def configure(build, request):
        return run([cmake, '-S', os.path.join(HERE, 'cmake'), '-B', build]
                   + generator +
                   ['-DCMAKE_C_COMPILER=' + compiler,
                    '-DCMAKE_C_FLAGS=' + flags,
                    '-DCMAKE_BUILD_TYPE=Debug',
                    '-DCMAKE_PREFIX_PATH=' + inst.prefix,
                    # Only the temporary install may satisfy find_package.
                    '-DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF',
                    '-DCMAKE_FIND_USE_SYSTEM_ENVIRONMENT_PATH=OFF',
                    '-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF',
                    '-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF',
                    '-DNETKIT_REQUEST=' + request], expect_ok=False)

    build = os.path.join(tmp, 'cmake-build')
    status, out = configure(build, '0.1')
    check(status == 0, 'find_package(netkit 0.1 REQUIRED) succeeds')
    run([cmake, '--build', build])
    shared = os.path.join(build, 'consumer_shared')
    check(needed(shared).count('libnetkit.so.' + a.major) == 1,
          'netkit::netkit links the shared library')
    check_runs(shared, a, lib_env(inst.libdir), 'the netkit::netkit consumer')
    static = os.path.join(build, 'consumer_static')
    check(not any(n.startswith('libnetkit') for n in needed(static)),
          'netkit::netkit_static links the archive')
    check_runs(static, a, None, 'the netkit::netkit_static consumer')

    newer_minor = '%s.%d' % (a.major, int(a.version.split('.')[1]) + 1)
    next_major = '%d.0' % (int(a.major) + 1)
    for request in (next_major, newer_minor):
        status, out = configure(os.path.join(tmp, 'cmake-' + request), request)
        check(status != 0 and 'version: ' + a.version in out
              and 'requested version "%s"' % request in out,
              'find_package(netkit %s REQUIRED) is refused (found %s)'
              % (request, a.version))
    return 0


# ---------------------------------------------------------------- subproject

def check_subproject(a, tmp):
    src = os.path.join(tmp, 'src')
    shutil.copytree(os.path.join(HERE, 'meson'), src)
    shutil.copy(os.path.join(HERE, 'consumer.c'), src)
    os.mkdir(os.path.join(src, 'subprojects'))
    os.symlink(os.path.abspath(a.source_root), os.path.join(src, 'subprojects', 'netkit'))
    shutil.copy(os.path.join(a.source_root, 'docs', 'netkit.wrap.example'),
                os.path.join(src, 'subprojects', 'netkit.wrap'))

    build = os.path.join(tmp, 'build')
    # The fallback is forced so that an installed libnetkit cannot be used.
    run(a.meson + ['setup', build, src, '--force-fallback-for=netkit',
                   '-Dwerror=true', '-Dbuildtype=debug'],
        env=dict(os.environ, CC=' '.join(a.cc)))
    run(a.meson + ['compile', '-C', build])
    run(a.meson + ['test', '-C', build, '--print-errorlogs'])
    check_runs(os.path.join(build, 'consumer'), a, None, 'the subproject consumer')

    def introspect(what):
        _, out = run(a.meson + ['introspect', '--' + what, build])
        return json.loads(out)

    projinfo = introspect('projectinfo')
    subs = {s['name']: s['version'] for s in projinfo['subprojects']}
    check(subs.get('netkit') == a.version,
          'dependency(\'netkit\') came from the subproject (version %s)' % a.version)
    tests = [t['name'] for t in introspect('tests')]
    check(tests == ['consumer'], 'no test of libnetkit is defined (tests: %s)' % tests)
    benches = [t['name'] for t in introspect('benchmarks')]
    check(benches == [], 'no benchmark of libnetkit is defined')
    exes = sorted(t['name'] for t in introspect('targets')
                  if t['type'] == 'executable' and t['subproject'] == 'netkit')
    check(exes == [], 'no executable of libnetkit is built (%s)' % exes)
    installed = introspect('installed')
    check(installed == {}, 'nothing is installed (%s)' % sorted(installed))
    return 0


# ---------------------------------------------------------------- first program

FIRST_PROGRAM = '### A first program'


def readme_program(source_root):
    """The ```c block under README's "A first program" heading."""
    with open(os.path.join(source_root, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    m = re.search(r'^%s\n.*?^```c\n(.*?)^```' % re.escape(FIRST_PROGRAM), readme,
                  re.S | re.M)
    if not m:
        raise Failure('README has no ```c block under "%s"' % FIRST_PROGRAM)
    return m.group(1)


def find_file(top, name):
    """The directory under top holding name (the multiarch libdir is found,
    not assumed)."""
    for root, _, files in os.walk(top):
        if name in files:
            return root
    raise Failure('no %s under %s' % (name, top))


def echo_session(exe, env, signum, what):
    """Run the echo server on a free port, check two clients' echoes, one
    of them still connected at the signal, and a clean exit 0."""
    import select
    import signal
    import socket
    proc = subprocess.Popen([exe, '127.0.0.1:0'], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    clients = []
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ''
        m = re.match(r'listening on 127\.0\.0\.1:(\d+)$', line.strip())
        check(m is not None, '%s prints its address (%r)' % (what, line.strip()))
        for i in range(2):
            c = socket.create_connection(('127.0.0.1', int(m.group(1))), timeout=10)
            clients.append(c)
            msg = ('hello %d from %s\n' % (i, what)).encode() * (1 + 1000 * i)
            c.sendall(msg)
            got = b''
            while len(got) < len(msg):
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            check(got == msg, '%s echoes %d bytes to client %d' % (what, len(msg), i))
        clients.pop(0).close()
        proc.send_signal(signum)
        try:
            status = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failure('%s still runs 10 s after %s' % (what, signal.Signals(signum).name))
        rest = proc.stdout.read()
        check(status == 0 and not rest.strip(), '%s exits 0 on %s, nothing on stderr%s'
              % (what, signal.Signals(signum).name, (': ' + rest.strip()) if rest.strip() else ''))
        check(clients[0].recv(1) == b'', '%s closed the client still connected' % what)
    finally:
        for c in clients:
            c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def check_first_program(a, tmp):
    """README's first program, built against the install as README says:
    pkg-config through PKG_CONFIG_PATH, then LD_LIBRARY_PATH or an rpath."""
    import signal
    # No skip: README's build needs pkg-config, which scripts/setup build
    # installs.
    check(shutil.which('pkg-config') is not None, 'pkg-config is installed')
    src = os.path.join(tmp, 'echo.c')
    with open(src, 'w', encoding='utf-8') as f:
        f.write(readme_program(a.source_root))
    inst = Install(a, tmp)
    env = dict(os.environ)
    env['PKG_CONFIG_PATH'] = find_file(inst.destdir, 'netkit.pc')
    # The install is under DESTDIR: the .pc file's paths get its prefix.
    env['PKG_CONFIG_SYSROOT_DIR'] = inst.destdir
    # As README: cc echo.c $(pkg-config --cflags --libs netkit), the
    # libraries after the source.
    _, flags = run(['pkg-config', '--cflags', '--libs', 'netkit'], env=env)
    flags = shlex.split(flags)
    libdir = find_file(inst.destdir, 'libnetkit.so.' + a.major)

    exe = os.path.join(tmp, 'echo')
    compile_c(a, exe, src, [], flags)
    echo_session(exe, lib_env(libdir), signal.SIGTERM, 'echo (LD_LIBRARY_PATH)')

    exe_rpath = os.path.join(tmp, 'echo-rpath')
    compile_c(a, exe_rpath, src, [], flags + ['-Wl,-rpath,' + libdir])
    _, dyn = run(['readelf', '-d', exe_rpath], quiet=True)
    check(re.search(r'\((?:RUNPATH|RPATH)\).*\[%s\]' % re.escape(libdir), dyn) is not None,
          'the rpath build records the install\'s libdir')
    env = dict(os.environ)
    env.pop('LD_LIBRARY_PATH', None)
    echo_session(exe_rpath, env, signal.SIGINT, 'echo (rpath)')
    return 0


CHECKS = {
    'first-program': check_first_program,
    'install': check_install,
    'headers': check_headers,
    'pkgconfig': check_pkgconfig,
    'cmake': check_cmake,
    'subproject': check_subproject,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('check', choices=sorted(CHECKS))
    ap.add_argument('--meson', required=True, type=shlex.split)
    ap.add_argument('--cc', required=True, type=shlex.split)
    ap.add_argument('--cxx', default='', type=shlex.split)
    ap.add_argument('--source-root', required=True)
    ap.add_argument('--build-root', required=True)
    ap.add_argument('--prefix', required=True)
    ap.add_argument('--libdir', required=True)
    ap.add_argument('--includedir', required=True)
    ap.add_argument('--datadir', default='share')
    ap.add_argument('--mandir', default='share/man')
    ap.add_argument('--man-pages', choices=['yes', 'no'], default='no',
                    help='whether the build installs man pages (doxygen found)')
    ap.add_argument('--version', required=True)
    ap.add_argument('--sanitize', default='none')
    a = ap.parse_args()
    a.major = a.version.split('.')[0]
    a.man_pages = a.man_pages == 'yes'

    tmp = tempfile.mkdtemp(prefix='netkit-%s-' % a.check)
    try:
        status = CHECKS[a.check](a, tmp) or 0
    except Failure as e:
        log('not ok - ' + str(e))
        status = 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
