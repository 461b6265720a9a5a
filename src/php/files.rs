//! Files on the account's drive host and the files of an entity, as PHP
//! classes: one-line delegations to [`crate::drive`].

use super::convert::{hashtable_to_json, json_to_array, null_zval};
use super::exceptions::to_php;
use super::services::unknown_method_of;
use crate::client::AmoCore;
use crate::drive::{Drive, EntityFiles, FilesPage, UploadOptions};
use crate::error::Error;
use ext_php_rs::boxed::ZBox;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ce;
use serde_json::{json, Value};
use std::sync::Arc;

type Array = PhpResult<ZBox<ZendHashTable>>;

fn arg(name: &str, ht: Option<&ZendHashTable>) -> PhpResult<Value> {
    match ht {
        None => Ok(json!({})),
        Some(ht) => hashtable_to_json(ht).map_err(|e| to_php(Error::argument(name, e))),
    }
}

fn array(v: &Value) -> Array {
    json_to_array(v).map_err(to_php)
}

/// A list of uuid strings.
fn uuids(name: &str, ht: &ZendHashTable) -> PhpResult<Vec<String>> {
    match arg(name, Some(ht))? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(to_php(Error::argument(
                    name,
                    format!("must be a list of uuid strings, got {other}"),
                ))),
            })
            .collect(),
        Value::Object(o) if o.is_empty() => Ok(Vec::new()),
        _ => Err(to_php(Error::argument(
            name,
            "must be a list of uuid strings",
        ))),
    }
}

fn not_constructible<T>() -> PhpResult<T> {
    Err(to_php(Error::argument(
        "service",
        "services come from AmoClient::getInstance()->files() and entityFiles()",
    )))
}

/// The account's files, on its drive host: upload from disk in parts,
/// list, rename, delete.
#[php_class]
#[php(name = "AmoFilesService")]
pub struct AmoFilesService {
    pub(crate) core: Arc<AmoCore>,
}

#[php_impl]
impl AmoFilesService {
    /// Not constructible: AmoClient::files() returns it.
    #[php(constructor, vis = "private")]
    pub fn __construct() -> PhpResult<Self> {
        not_constructible()
    }

    /// A method this service does not have: AmoConfigException naming it.
    pub fn __call(&self, name: String, arguments: &ZendHashTable) -> PhpResult<Zval> {
        let _ = arguments;
        use ext_php_rs::class::RegisteredClass;
        Err(unknown_method_of(
            Self::get_metadata().ce(),
            "files()",
            &name,
        ))
    }

    /// Uploads the file at $path in the parts the drive host asks for (one
    /// in memory at a time); options: file_name, content_type, file_uuid (a
    /// new version), with_preview. Returns the file (uuid, version_uuid, name, size, …).
    pub fn upload(&self, path: String, options: Option<&ZendHashTable>) -> Array {
        let options = UploadOptions::from_value(&arg("options", options)?).map_err(to_php)?;
        let file = Drive::new(&self.core)
            .upload(std::path::Path::new(&path), &options)
            .map_err(to_php)?;
        array(&file)
    }

    /// One page of files (filter, page, limit); [] on 204.
    pub fn get(&self, params: Option<&ZendHashTable>) -> Array {
        let page = Drive::new(&self.core)
            .page(&arg("params", params)?)
            .map_err(to_php)?;
        array(&Value::Array(page.items))
    }

    /// Every file across all pages, fetched lazily page by page.
    pub fn iterate(&self, params: Option<&ZendHashTable>) -> PhpResult<AmoFilesIterator> {
        let params = crate::services::list_query(&arg("params", params)?).map_err(to_php)?;
        Ok(AmoFilesIterator {
            core: self.core.clone(),
            params,
            items: Vec::new(),
            pos: 0,
            key: 0,
            next: None,
        })
    }

    /// One file by uuid, or null.
    pub fn get_one(&self, uuid: String) -> PhpResult<Option<ZBox<ZendHashTable>>> {
        Drive::new(&self.core)
            .get_one(&uuid)
            .map_err(to_php)?
            .map(|v| array(&v))
            .transpose()
    }

    /// Renames a file: ['uuid' => …, 'name' => …].
    pub fn update_one(&self, item: &ZendHashTable) -> Array {
        let got = Drive::new(&self.core)
            .update_one(&arg("item", Some(item))?)
            .map_err(to_php)?;
        array(&got)
    }

    /// Deletes files by uuid (to the drive's trash).
    pub fn delete(&self, uuids: &ZendHashTable) -> PhpResult<()> {
        let list = self::uuids("uuids", uuids)?;
        Drive::new(&self.core).delete(&list).map_err(to_php)
    }

    /// Deletes one file by uuid.
    pub fn delete_one(&self, uuid: String) -> PhpResult<()> {
        Drive::new(&self.core).delete(&[uuid]).map_err(to_php)
    }
}

/// The files attached to one lead, contact, company or customer.
#[php_class]
#[php(name = "AmoEntityFilesService")]
pub struct AmoEntityFilesService {
    pub(crate) core: Arc<AmoCore>,
    pub(crate) entity_type: String,
    pub(crate) entity_id: i64,
}

impl AmoEntityFilesService {
    fn files(&self) -> PhpResult<EntityFiles<'_>> {
        EntityFiles::new(&self.core, &self.entity_type, self.entity_id).map_err(to_php)
    }
}

#[php_impl]
impl AmoEntityFilesService {
    /// Not constructible: AmoClient::entityFiles() returns it.
    #[php(constructor, vis = "private")]
    pub fn __construct() -> PhpResult<Self> {
        not_constructible()
    }

    /// A method this service does not have: AmoConfigException naming it.
    pub fn __call(&self, name: String, arguments: &ZendHashTable) -> PhpResult<Zval> {
        let _ = arguments;
        use ext_php_rs::class::RegisteredClass;
        let owner = format!("entityFiles({}, {})", self.entity_type, self.entity_id);
        Err(unknown_method_of(Self::get_metadata().ce(), &owner, &name))
    }

    /// The attached files ([['file_uuid' => …], …]); [] on 204.
    pub fn get(&self, params: Option<&ZendHashTable>) -> Array {
        let got = self.files()?.get(&arg("params", params)?).map_err(to_php)?;
        array(&Value::Array(got))
    }

    /// Attaches files by uuid.
    pub fn add(&self, fileUuids: &ZendHashTable) -> Array {
        let list = uuids("fileUuids", fileUuids)?;
        let got = self.files()?.add(&list).map_err(to_php)?;
        array(&Value::Array(got))
    }

    /// Attaches one file by uuid.
    pub fn add_one(&self, fileUuid: String) -> Array {
        let mut got = self.files()?.add(&[fileUuid]).map_err(to_php)?;
        array(&got.pop().unwrap_or_else(|| json!({})))
    }

    /// Detaches files by uuid (they stay on the drive).
    pub fn delete(&self, fileUuids: &ZendHashTable) -> PhpResult<()> {
        let list = uuids("fileUuids", fileUuids)?;
        self.files()?.delete(&list).map_err(to_php)
    }

    /// Detaches one file by uuid.
    pub fn delete_one(&self, fileUuid: String) -> PhpResult<()> {
        self.files()?.delete(&[fileUuid]).map_err(to_php)
    }
}

/// A lazy walk over every file of the drive, one page in memory at a time.
#[php_class]
#[php(name = "AmoFilesIterator")]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
pub struct AmoFilesIterator {
    core: Arc<AmoCore>,
    params: Value,
    items: Vec<Value>,
    pos: usize,
    key: i64,
    next: Option<String>,
}

impl AmoFilesIterator {
    fn load(&mut self, page: FilesPage) {
        self.items = page.items;
        self.next = page.next;
        self.pos = 0;
    }
}

#[php_impl]
impl AmoFilesIterator {
    /// Not constructible: AmoFilesService::iterate() returns it.
    #[php(constructor, vis = "private")]
    pub fn __construct() -> PhpResult<Self> {
        not_constructible()
    }

    /// The current file.
    pub fn current(&self) -> PhpResult<Zval> {
        match self.items.get(self.pos) {
            None => Ok(null_zval()),
            Some(v) => {
                let mut z = Zval::new();
                z.set_hashtable(array(v)?);
                Ok(z)
            }
        }
    }

    /// The file's position across all pages, from 0.
    pub fn key(&self) -> i64 {
        self.key
    }

    /// Moves on, fetching the next page when this one is used up.
    pub fn next(&mut self) -> PhpResult<()> {
        self.pos += 1;
        self.key += 1;
        if self.pos >= self.items.len() {
            if let Some(url) = self.next.take() {
                let page = Drive::new(&self.core).page_at(&url).map_err(to_php)?;
                self.load(page);
            }
        }
        Ok(())
    }

    /// Fetches the first page (again).
    pub fn rewind(&mut self) -> PhpResult<()> {
        let page = Drive::new(&self.core).page(&self.params).map_err(to_php)?;
        self.key = 0;
        self.load(page);
        Ok(())
    }

    /// Whether there is a current file.
    pub fn valid(&self) -> bool {
        self.pos < self.items.len()
    }
}
