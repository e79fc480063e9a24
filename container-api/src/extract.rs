//! Extractors whose rejections are `ApiError`s, so malformed requests get the
//! contract's JSON error shape instead of axum's plain-text defaults.

use axum::extract::{FromRequest, FromRequestParts};

use crate::ApiError;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
