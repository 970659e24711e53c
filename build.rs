//! With the `torch` feature, puts libtorch's library directory (reported by
//! torch-sys) into the `fedstake` binary's rpath, so it runs without
//! LD_LIBRARY_PATH (link arguments of a dependency's build script do not reach
//! this package's binaries; client/build.rs does the same for its tests).

fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
