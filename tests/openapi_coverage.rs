//! Every status code the OpenAPI documents declare is produced (being written).
