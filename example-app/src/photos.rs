//! Meal photos: streaming an upload to a temporary file under `PHOTO_DIR` with its 5 MiB limit
//! (so that 60 parallel uploads hold 60 small buffers, not 300 MiB of memory), checking by magic
//! bytes that it is a JPEG, PNG or WebP image, and keeping it under a random name.
//!
//! The three signatures are checked by hand: a type-sniffing crate would recognise hundreds of
//! formats that must all be refused anyway, and a client's `Content-Type` is not trusted.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

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

/// An uploaded, checked photo, in a temporary file until [`store`] keeps it; dropped without
/// being stored, the file is removed.
#[derive(Debug)]
pub struct Photo {
    /// Its format.
    pub kind: ImageKind,
    /// Its size in bytes.
    pub bytes: u64,
    temp: Option<PathBuf>,
}

impl Drop for Photo {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Small and local: a blocking remove in drop is cheaper than a task.
            let _ = std::fs::remove_file(temp);
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the photo is larger than {} MiB",
            MAX_PHOTO_BYTES / (1024 * 1024)
        ),
    )
}

fn write_failed(dir: &Path, e: &std::io::Error) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "cannot write to PHOTO_DIR {}: {e}",
        dir.display()
    ))
}

/// Streams the `photo` part to a temporary file in `dir`, refusing it past [`MAX_PHOTO_BYTES`]
/// or when its first bytes are not an image's.
///
/// # Errors
/// 413 `payload_too_large`, 415 `unsupported_media_type`, the multipart stream's error, or 500
/// when `dir` cannot be written.
pub async fn read_upload(mut field: Field<'_>, dir: &Path) -> Result<Photo, ApiError> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        ApiError::internal(anyhow::anyhow!(
            "cannot create PHOTO_DIR {}: {e}",
            dir.display()
        ))
    })?;
    let temp = dir.join(format!(".upload-{}.part", uuid::Uuid::new_v4().simple()));
    let mut file = tokio::fs::File::create(&temp)
        .await
        .map_err(|e| write_failed(dir, &e))?;
    // From here on, dropping `photo` (an error, a cut connection) removes the file.
    let mut photo = Photo {
        kind: ImageKind::Jpeg,
        bytes: 0,
        temp: Some(temp),
    };
    let mut head = Vec::with_capacity(12);
    while let Some(chunk) = field.chunk().await? {
        let size = usize::try_from(photo.bytes).unwrap_or(usize::MAX);
        if size.saturating_add(chunk.len()) > MAX_PHOTO_BYTES {
            return Err(too_large());
        }
        if head.len() < 12 {
            let take = (12 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| write_failed(dir, &e))?;
        photo.bytes += chunk.len() as u64;
    }
    file.flush().await.map_err(|e| write_failed(dir, &e))?;
    photo.kind = ImageKind::sniff(&head).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the photo must be a JPEG, PNG or WebP image",
        )
    })?;
    Ok(photo)
}

/// Keeps the photo under `dir` with a random name; returns the name.
///
/// # Errors
/// 500 when the folder cannot be written (a deployment problem, logged).
pub async fn store(dir: &Path, mut photo: Photo) -> Result<String, ApiError> {
    let name = format!(
        "{}.{}",
        uuid::Uuid::new_v4().simple(),
        photo.kind.extension()
    );
    let Some(temp) = photo.temp.take() else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the photo was already stored"
        )));
    };
    if let Err(e) = tokio::fs::rename(&temp, dir.join(&name)).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(write_failed(dir, &e));
    }
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
