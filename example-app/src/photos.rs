//! Meal photos: reading an upload with its 5 MiB limit, checking by magic bytes that it is a
//! JPEG, PNG or WebP image, and storing it under `PHOTO_DIR` with a random name.
//!
//! The three signatures are checked by hand: a type-sniffing crate would recognise hundreds of
//! formats that must all be refused anyway, and a client's `Content-Type` is not trusted.

use std::path::Path;

use axum::extract::multipart::Field;

use crate::error::ApiError;

/// The largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 5 * 1024 * 1024;

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// `FF D8 FF`.
    Jpeg,
    /// `89 50 4E 47 0D 0A 1A 0A`.
    Png,
    /// `RIFF....WEBP`.
    WebP,
}

impl ImageKind {
    /// The format of `bytes`, judged by their first bytes only.
    ///
    /// ```
    /// use calories_app::photos::ImageKind;
    /// assert_eq!(ImageKind::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageKind::Png));
    /// assert_eq!(ImageKind::sniff(b"GIF89a"), None);
    /// ```
    #[must_use]
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else {
            None
        }
    }

    /// The media type served with the photo.
    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }
}

/// An uploaded, checked photo, still in memory.
#[derive(Debug)]
pub struct Photo {
    /// Its format.
    pub kind: ImageKind,
    bytes: Vec<u8>,
}

/// Reads the `photo` part, refusing it past [`MAX_PHOTO_BYTES`] or when it is not an image.
///
/// # Errors
/// 413 `payload_too_large`, 415 `unsupported_media_type`, or the multipart stream's error.
pub async fn read_upload(mut field: Field<'_>) -> Result<Photo, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > MAX_PHOTO_BYTES {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the photo is larger than {} MiB",
                    MAX_PHOTO_BYTES / (1024 * 1024)
                ),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let kind = ImageKind::sniff(&bytes).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the photo must be a JPEG, PNG or WebP image",
        )
    })?;
    Ok(Photo { kind, bytes })
}

/// Writes the photo under `dir` with a random name; returns the name.
///
/// # Errors
/// 500 when the folder cannot be written (a deployment problem, logged).
pub async fn store(dir: &Path, photo: &Photo) -> Result<String, ApiError> {
    let name = format!(
        "{}.{}",
        uuid::Uuid::new_v4().simple(),
        photo.kind.extension()
    );
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        ApiError::internal(anyhow::anyhow!(
            "cannot create PHOTO_DIR {}: {e}",
            dir.display()
        ))
    })?;
    tokio::fs::write(dir.join(&name), &photo.bytes)
        .await
        .map_err(|e| {
            ApiError::internal(anyhow::anyhow!(
                "cannot write to PHOTO_DIR {}: {e}",
                dir.display()
            ))
        })?;
    Ok(name)
}

/// The stored photo `name`, if it is there. Names come from the database, never from a request,
/// and are checked to be a bare file name all the same.
pub async fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    if !is_bare_name(name) {
        return None;
    }
    tokio::fs::read(dir.join(name)).await.ok()
}

/// Removes a stored photo; a missing file is not an error (a retry or a second replica won).
pub async fn remove(dir: &Path, name: &str) {
    if !is_bare_name(name) {
        return;
    }
    match tokio::fs::remove_file(dir.join(name)).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %err, name, "cannot remove a meal photo");
        }
        _ => {}
    }
}

fn is_bare_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        && !name.starts_with('.')
}
