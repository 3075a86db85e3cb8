//! Container images made inside a test, from files of the host, so that the image and
//! runtime tests need no internet and no image tool. The builder, the layouts and the
//! push live in `berth-image-layout` (`berth up` builds its example image with them);
//! this module re-exports them and adds [`busybox_image`], which skips a test on a
//! host without a static busybox.

pub use berth_image_layout::*;

/// The one-layer image of the host's static busybox
/// ([`berth_image_layout::busybox_image_from`]): its applets, `/etc/passwd` with
/// root, `user` (1000) and `nobody` (65534), a sticky `/tmp`. The layer is closed, so
/// what a test adds goes to a second layer.
///
/// `None`, after [`crate::skip`] (which panics under CI), when the host has no static
/// busybox.
pub fn busybox_image() -> Option<ImageBuilder> {
    let Some(busybox) = busybox_binary() else {
        crate::skip("a static busybox (Debian's busybox-static; scripts/test.sh installs it)");
        return None;
    };
    Some(busybox_image_from(&busybox))
}
