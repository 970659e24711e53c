//! Links the `torch` feature's executables against libtorch so they run as
//! built: this package's tests and benches, and the `fedstake` binary, whose
//! manifest names this script too (link arguments of a dependency's build
//! script never reach its dependents, so torch-sys and tch cannot do it).
//!
//! - libtorch's library directory, as torch-sys reports it, goes into the
//!   rpath: no LD_LIBRARY_PATH needed.
//! - `libtorch.so` is linked although no symbol of it is used directly: it
//!   pulls in `libtorch_cuda.so`, whose loading registers the CUDA backend.
//!   Under the linker's default `--as-needed` it is dropped, and tch then sees
//!   no CUDA device even on a GPU machine.

fn main() {
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
