//! `uniffi-bindgen generate --library target/debug/libmobile_ffi.so --language kotlin --out-dir …`:
//! the bindings generator, pinned to the UniFFI version mobile-ffi is built with
//! (bindings and library must come from the same version).

fn main() {
    uniffi::uniffi_bindgen_main()
}
