//! The two DPAPI calls (Windows only).

use std::ptr;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Cryptography::{
    CRYPT_INTEGER_BLOB, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData,
    CryptUnprotectData,
};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Seals `secret` for this Windows installation (machine scope) with `entropy`.
///
/// # Errors
/// [`Error`] with the Windows error code when `CryptProtectData` fails, or when an input is
/// longer than 4 GiB.
pub fn protect_for_machine(secret: &[u8], entropy: &[u8]) -> Result<Vec<u8>, Error> {
    const OPERATION: &str = "CryptProtectData";
    let input = borrowed(secret, OPERATION)?;
    let entropy = borrowed(entropy, OPERATION)?;
    let mut output = Returned::empty();
    #[allow(unsafe_code)]
    // SAFETY: `input` and `entropy` point at `cbData` readable bytes that outlive the call (they
    // borrow `secret` and `entropy`), and DPAPI only reads them. The description, reserved and
    // prompt pointers may be null (no description, no prompt: CRYPTPROTECT_UI_FORBIDDEN).
    // `output.0` is a valid out-parameter; on success it owns a LocalAlloc'd buffer, which
    // `Returned` frees.
    let succeeded = unsafe {
        CryptProtectData(
            &input,
            ptr::null(),
            &entropy,
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN,
            &mut output.0,
        )
    };
    if succeeded == 0 {
        return Err(last_error(OPERATION));
    }
    Ok(output.bytes().to_vec())
}

/// Opens a blob sealed by [`protect_for_machine`] with the same `entropy`.
///
/// # Errors
/// [`Error`] with the Windows error code: [`Error::is_foreign_or_damaged`] when the blob was
/// sealed by another installation, with other entropy, or is damaged.
pub fn unprotect(blob: &[u8], entropy: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    const OPERATION: &str = "CryptUnprotectData";
    let input = borrowed(blob, OPERATION)?;
    let entropy = borrowed(entropy, OPERATION)?;
    let mut output = Returned::empty();
    #[allow(unsafe_code)]
    // SAFETY: as in `protect_for_machine`: the inputs borrow live slices that DPAPI only reads,
    // the description out-pointer, reserved and prompt pointers are null (allowed), and on
    // success `output.0` owns a LocalAlloc'd buffer that `Returned` wipes and frees.
    let succeeded = unsafe {
        CryptUnprotectData(
            &input,
            ptr::null_mut(),
            &entropy,
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut output.0,
        )
    };
    if succeeded == 0 {
        return Err(last_error(OPERATION));
    }
    Ok(Zeroizing::new(output.bytes().to_vec()))
}

/// A blob descriptor over borrowed bytes (DPAPI's inputs are never written through it).
fn borrowed(bytes: &[u8], operation: &'static str) -> Result<CRYPT_INTEGER_BLOB, Error> {
    let length = u32::try_from(bytes.len()).map_err(|_| Error {
        operation,
        source: std::io::Error::other("the input is longer than 4 GiB"),
    })?;
    Ok(CRYPT_INTEGER_BLOB {
        cbData: length,
        pbData: bytes.as_ptr().cast_mut(),
    })
}

fn last_error(operation: &'static str) -> Error {
    Error {
        operation,
        source: std::io::Error::last_os_error(),
    }
}

/// A buffer DPAPI allocated with `LocalAlloc`: wiped and freed when dropped.
struct Returned(CRYPT_INTEGER_BLOB);

impl Returned {
    fn empty() -> Self {
        Self(CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: ptr::null_mut(),
        })
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.0.pbData.is_null() {
            return &mut [];
        }
        #[allow(unsafe_code)]
        // SAFETY: a successful call set `pbData` to a buffer of `cbData` bytes that this value
        // owns alone until it is dropped; the borrow of `self` bounds the slice's life.
        unsafe {
            std::slice::from_raw_parts_mut(self.0.pbData, self.0.cbData as usize)
        }
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if self.0.pbData.is_null() {
            return;
        }
        self.bytes().zeroize();
        #[allow(unsafe_code)]
        // SAFETY: `pbData` was allocated by DPAPI with LocalAlloc, is freed once (here), and is
        // not used afterwards.
        unsafe {
            LocalFree(self.0.pbData.cast());
        }
        self.0.pbData = ptr::null_mut();
    }
}
