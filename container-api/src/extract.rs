//! Extractors whose rejections are `ApiError`s, so malformed requests get the
//! contract's JSON error shape instead of axum's plain-text defaults.

use axum::extract::FromRequestParts;

use crate::ApiError;

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
