//! With the `torch` feature, puts libtorch's library directory (reported by
//! torch-sys) into the rpath of this package's tests, benches and examples, so
//! they run without LD_LIBRARY_PATH. torch-sys passes `-Wl,-rpath` only to the
//! compiler of its C++ shim, which never links, so nothing else does it.

fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
