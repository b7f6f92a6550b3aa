//! `oci-archive:` and `docker-archive:` transports (reading and writing).

use super::{ImageError, ImageRef, OpenedImage, Result};

pub(crate) fn open_archive(reference: &ImageRef, _platform: &str) -> Result<OpenedImage> {
    Err(ImageError::UnsupportedTransport {
        reference: reference.to_string(),
        transport: reference.transport(),
    })
}
