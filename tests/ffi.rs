//! The C API: the checked-in header matches what cbindgen generates from
//! src/ffi, the C test program (tests/c/ffi_test.c) and the C example
//! compile against the static library and pass (also under valgrind when
//! it is installed), and error messages stay on the thread that failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const HEADER: &str = "include/connmgr.h";
const UPDATE_VAR: &str = "CONNMGR_UPDATE_HEADER";

fn manifest() -> &'static Path {
    Path::new(MANIFEST_DIR)
}

/// The header cbindgen generates from the crate with cbindgen.toml.
fn generated_header() -> String {
    let config = cbindgen::Config::from_file(manifest().join("cbindgen.toml"))
        .expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_src(manifest().join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

/// The checked-in include/connmgr.h is exactly what cbindgen generates;
/// with CONNMGR_UPDATE_HEADER=1 the test rewrites it instead.
fn header_matches_cbindgen_output() {
    let fresh = generated_header();
    let path = manifest().join(HEADER);
    if std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &fresh).expect("write the header");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in == fresh {
        return;
    }
    let old: Vec<&str> = checked_in.lines().collect();
    let new: Vec<&str> = fresh.lines().collect();
    let mut hint = String::new();
    let mut shown = 0;
    for i in 0..old.len().max(new.len()) {
        let (a, b) = (old.get(i), new.get(i));
        if a == b {
            continue;
        }
        if shown == 6 {
            hint.push_str("  ...\n");
            break;
        }
        shown += 1;
        if let Some(a) = a {
            hint.push_str(&format!("  -{:>5}: {a}\n", i + 1));
        }
        if let Some(b) = b {
            hint.push_str(&format!("  +{:>5}: {b}\n", i + 1));
        }
    }
    panic!(
        "{HEADER} has drifted from src/ffi (- checked in, + generated; {} vs {} lines):\n\
         {hint}\
         Regenerate it with\n  \
         {UPDATE_VAR}=1 cargo test --features ffi --test ffi header_matches_cbindgen_output\n\
         or `cbindgen --config cbindgen.toml --output {HEADER} src/ffi/mod.rs`, then review \
         `git diff {HEADER}`.",
        old.len(),
        new.len(),
    );
}

/// docs/ffi.md names every function the header declares, so its
/// reference cannot fall behind the API.
fn docs_cover_every_function() {
    let header = std::fs::read_to_string(manifest().join(HEADER)).expect("read the header");
    let docs = std::fs::read_to_string(manifest().join("docs/ffi.md")).expect("read docs/ffi.md");
    let declared: Vec<&str> = header
        .lines()
        .filter(|line| !line.starts_with([' ', '*', '/', '#']) && !line.starts_with("typedef"))
        .filter_map(|line| {
            line.match_indices("connmgr_").find_map(|(start, _)| {
                let rest = &line[start..];
                let end = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '_')?;
                rest[end..].starts_with('(').then(|| &rest[..end])
            })
        })
        .collect();
    assert!(
        declared.len() > 100,
        "found only {declared:?} in the header"
    );
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ffi.md does not mention {missing:?}; add them to its reference"
    );
}

/// The directory of the build profile this test binary belongs to
/// (`target/debug` for `target/debug/deps/ffi-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the deps directory");
    match deps.parent() {
        Some(profile) if deps.file_name().is_some_and(|n| n == "deps") => profile.to_path_buf(),
        _ => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| manifest().join("target"));
            target.join("debug")
        }
    }
}

/// The names in an ar archive's symbol table (its first member), as raw
/// bytes; empty if the file is not such an archive.
fn archive_symbol_table(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut head = [0u8; 8 + 60];
    if file.read_exact(&mut head).is_err() || &head[..8] != b"!<arch>\n" {
        return Vec::new();
    }
    let member = &head[8..];
    let name = String::from_utf8_lossy(&member[..16]);
    let size: u64 = String::from_utf8_lossy(&member[48..58])
        .trim()
        .parse()
        .unwrap_or(0);
    if name.trim_end() != "/" && !name.starts_with("/SYM64/") {
        return Vec::new();
    }
    let mut table = Vec::new();
    let _ = file.take(size).read_to_end(&mut table);
    table
}

/// Whether the archive at `path` exports the C API (an archive built
/// without the `ffi` feature does not).
fn has_ffi_symbols(path: &Path) -> bool {
    let table = archive_symbol_table(path);
    let needle = b"connmgr_snapshot\0";
    table.windows(needle.len()).any(|w| w == needle)
}

/// The newest static library built with the `ffi` feature for this
/// profile: `libconnmgr.a` beside `deps/` or in it (cargo gives static
/// libraries no hash, so each build overwrites them; one built without the
/// feature has no C API and is passed over).
fn find_staticlib(profile: &Path) -> Option<PathBuf> {
    [
        profile.join("libconnmgr.a"),
        profile.join("deps/libconnmgr.a"),
    ]
    .into_iter()
    .filter(|p| has_ffi_symbols(p))
    .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
}

/// Builds the static library as docs/ffi.md says, with `cargo rustc
/// --features ffi --lib --crate-type staticlib`, for this profile.
fn build_staticlib(profile: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest()).args([
        "rustc",
        "--features",
        "ffi",
        "--lib",
        "--crate-type",
        "staticlib",
    ]);
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = profile.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo rustc --features ffi --lib --crate-type staticlib failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A private hard link to the static library with the C API, so that a
/// build replacing the original meanwhile cannot change what the linker
/// reads; built first. Remove it after linking.
fn link_staticlib(dir: &Path) -> Result<PathBuf, String> {
    let profile = profile_dir();
    let private = dir.join(format!("libconnmgr.{}.a", std::process::id()));
    // Built once per run, so the library is never older than the code
    // (cargo test builds only the rlib); cargo makes a rebuild cheap.
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build_staticlib(&profile)).clone()?;
    // Twice, in case a build without the feature replaced it meanwhile.
    for _ in 0..2 {
        if let Some(lib) = find_staticlib(&profile) {
            let _ = std::fs::remove_file(&private);
            std::fs::hard_link(&lib, &private)
                .or_else(|_| std::fs::copy(&lib, &private).map(drop))
                .map_err(|e| format!("link {} to {}: {e}", lib.display(), private.display()))?;
            if has_ffi_symbols(&private) {
                return Ok(private);
            }
        }
    }
    let _ = std::fs::remove_file(&private);
    Err(format!(
        "no libconnmgr.a with the C API under {} even after building it",
        profile.display()
    ))
}

/// The host's target triple, as rustc reports it.
fn host_triple() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_owned()
}

/// Compiles the C program `source` (relative to the crate) against the
/// static library `lib` into `dir/name`, with the compiler the `cc` crate
/// detects. Builds under a private name first and renames it into place,
/// so that test runs sharing the target directory never see a half-written
/// program.
fn compile_c(
    source: &str,
    lib: &Path,
    dir: &Path,
    name: &str,
    extra: &[&str],
) -> Result<PathBuf, String> {
    let triple = host_triple();
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .target(&triple)
        .host(&triple)
        .opt_level(0)
        .debug(true)
        .try_get_compiler()
        .map_err(|e| format!("no C compiler found: {e}"))?;
    let exe = dir.join(name);
    let private = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let out = compiler
        .to_command()
        .args(["-std=c11", "-Wall", "-Wextra"])
        .args(extra)
        .arg("-I")
        .arg(manifest().join("include"))
        .arg(manifest().join(source))
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .arg("-o")
        .arg(&private)
        .output()
        .map_err(|e| format!("cannot run the C compiler: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&private);
        return Err(format!(
            "compiling {source} against {} failed:\n{}",
            lib.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&private, &exe).map_err(|e| format!("rename to {}: {e}", exe.display()))?;
    Ok(exe)
}

/// The compiled C programs.
struct Programs {
    /// The C test programs, each with the line it prints when every check
    /// passed.
    tests: Vec<(PathBuf, &'static str)>,
    example: PathBuf,
    /// The C demo node, examples/c/node.c.
    node: PathBuf,
    /// The test programs built with AddressSanitizer and
    /// UndefinedBehaviorSanitizer, or why they could not be (only that
    /// test fails then).
    sanitized: Result<Vec<PathBuf>, String>,
}

/// The C test programs: source, program name, and the line each prints
/// when every check passed.
const C_TESTS: [(&str, &str, &str); 2] = [
    ("tests/c/ffi_test.c", "ffi_test", "all C API checks passed"),
    (
        "tests/c/ffi_hooks_test.c",
        "ffi_hooks_test",
        "all C hook checks passed",
    ),
];

/// gcc's AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer.
const SANITIZERS: [&str; 3] = [
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
];

/// Compiles the C test program and the C example once for all tests here,
/// into `<profile>/ffi-c`.
fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Result<Programs, String>> = OnceLock::new();
    let built = PROGRAMS.get_or_init(|| {
        let dir = profile_dir().join("ffi-c");
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let lib = link_staticlib(&dir)?;
        let built = (|| {
            let mut tests = Vec::new();
            for (source, name, done) in C_TESTS {
                tests.push((compile_c(source, &lib, &dir, name, &[])?, done));
            }
            let example = compile_c("examples/c/loopback.c", &lib, &dir, "loopback", &[])?;
            let node = compile_c("examples/c/node.c", &lib, &dir, "node-c", &["-Wpedantic"])?;
            let sanitized = C_TESTS
                .iter()
                .map(|(source, name, _)| {
                    compile_c(source, &lib, &dir, &format!("{name}_san"), &SANITIZERS)
                })
                .collect();
            Ok(Programs {
                tests,
                example,
                node,
                sanitized,
            })
        })();
        let _ = std::fs::remove_file(&lib);
        built
    });
    match built {
        Ok(programs) => programs,
        Err(e) => panic!("{e}"),
    }
}

fn describe(out: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The C test program compiles against the static library and every check
/// in it passes: config and argument errors, loopback connections read
/// and written through handles, disconnect, permanent retry, snapshots,
/// stop with events in flight, stop from a callback, free without stop.
fn c_test_program_passes() {
    for (program, done) in &programs().tests {
        let out = Command::new(program)
            .output()
            .expect("run the C test program");
        assert!(
            out.status.success(),
            "the C test program {} failed\n{}",
            program.display(),
            describe(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(done), "{}", describe(&out));
    }
}

/// Under valgrind the C test program shows no memory errors and no
/// definite leaks. Needs valgrind: ignored with the reason where it is
/// missing, a failure on CI.
fn c_test_program_is_clean_under_valgrind() {
    for (program, _) in &programs().tests {
        let out = Command::new("valgrind")
            .args([
                "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
            ])
            .arg(program)
            .output()
            .expect("run valgrind");
        assert!(
            out.status.success(),
            "the C test program {} failed under valgrind\n{}",
            program.display(),
            describe(&out)
        );
    }
}

/// Built with gcc's AddressSanitizer and UndefinedBehaviorSanitizer, the
/// C test program passes with no memory error, leak or undefined
/// behaviour reported.
fn c_test_program_is_clean_under_sanitizers() {
    let sanitized = match &programs().sanitized {
        Ok(programs) => programs,
        Err(e) => panic!("{e}"),
    };
    for program in sanitized {
        run_sanitized(program);
    }
}

fn run_sanitized(program: &Path) {
    let out = Command::new(program)
        .env("ASAN_OPTIONS", "detect_leaks=1")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .expect("run the sanitized C test program");
    assert!(
        out.status.success(),
        "the C test program failed under the sanitizers\n{}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("runtime error") && !stderr.contains("Sanitizer"),
        "{}",
        describe(&out)
    );
}

/// The C example from docs/ffi.md compiles and runs to a clean stop.
fn c_example_runs() {
    let out = Command::new(&programs().example)
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "the C example failed\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in ["connected", "snapshot", "stopped"] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in the output\n{}",
            describe(&out)
        );
    }
}

/// The C demo node runs a short session on loopback: its status table
/// shows connections made, the permanent peers, the ban it causes, and it
/// stops with every thread joined.
fn c_demo_node_runs() {
    let out = Command::new(&programs().node)
        .args(["--seconds", "8"])
        .output()
        .expect("run the C demo node");
    assert!(
        out.status.success(),
        "the C demo node failed\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "connmgr demo node (C)",
        "permanent peers",
        "banned     ",
        "trimming   watermarks",
        "recent events",
        "stopped cleanly",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected:?} in the output\n{}",
            describe(&out)
        );
    }
    let bad = Command::new(&programs().node)
        .arg("--bogus")
        .output()
        .expect("run the C demo node");
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}

/// A failure's message is kept for its own thread only, and read through
/// connmgr_last_error / connmgr_last_error_length.
fn last_error_is_per_thread() {
    use connmgr::ffi::{
        connmgr_config_new, connmgr_last_error, connmgr_last_error_length, ConnmgrStatus,
    };
    // SAFETY: a NULL out pointer is a documented error, not undefined.
    let status = unsafe { connmgr_config_new(std::ptr::null_mut()) };
    assert_eq!(status, ConnmgrStatus::NullArgument);
    // SAFETY: connmgr_last_error never returns NULL; read before any other
    // call on this thread.
    let message = unsafe { std::ffi::CStr::from_ptr(connmgr_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(message.contains("connmgr_config_new") && message.contains("`out` is NULL"));
    assert_eq!(connmgr_last_error_length(), message.len());
    let other = std::thread::spawn(|| connmgr_last_error_length())
        .join()
        .unwrap();
    assert_eq!(other, 0, "another thread sees no message");
    assert_eq!(connmgr_last_error_length(), message.len());
}

#[path = "common/external.rs"]
mod external;

fn main() {
    external::run_each(vec![
        (
            "header_matches_cbindgen_output",
            Ok(()),
            header_matches_cbindgen_output as external::TestFn,
        ),
        (
            "docs_cover_every_function",
            Ok(()),
            docs_cover_every_function as external::TestFn,
        ),
        (
            "c_test_program_passes",
            external::installed("cc", "install a C compiler (apt-get install gcc)"),
            c_test_program_passes as external::TestFn,
        ),
        (
            "c_example_runs",
            external::installed("cc", "install a C compiler (apt-get install gcc)"),
            c_example_runs as external::TestFn,
        ),
        (
            "c_demo_node_runs",
            external::installed("cc", "install a C compiler (apt-get install gcc)"),
            c_demo_node_runs as external::TestFn,
        ),
        (
            "last_error_is_per_thread",
            Ok(()),
            last_error_is_per_thread as external::TestFn,
        ),
        (
            "c_test_program_is_clean_under_sanitizers",
            external::installed("cc", "install a C compiler (apt-get install gcc)"),
            c_test_program_is_clean_under_sanitizers as external::TestFn,
        ),
        (
            "c_test_program_is_clean_under_valgrind",
            external::installed("cc", "install a C compiler (apt-get install gcc)")
                .and(external::installed("valgrind", "apt-get install valgrind")),
            c_test_program_is_clean_under_valgrind as external::TestFn,
        ),
    ])
}
