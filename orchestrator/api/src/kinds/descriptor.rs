//! What the system knows about one kind, as plain data: its names (Kubernetes'
//! `APIResource` fields), where it is served and stored, its subresources, the
//! columns a table of it shows, and, as function pointers, the little that needs
//! the kind's Rust type (decoding, defaults, checking the spec).
//!
//! Nothing here depends on how an object's fields are laid out: a kind backed by
//! another crate's types needs only other functions in [`KindDescriptor::decode`]
//! and [`KindDescriptor::validate`].

use super::object::Object;
use crate::validation::FieldError;

/// One kind: everything the API server, the CLI and the store keys read about it.
#[derive(Debug)]
pub struct KindDescriptor {
    /// The API group: `""` for the core group, `apps`, `example.berth.dev`.
    pub group: &'static str,
    /// `v1`
    pub version: &'static str,
    /// `Deployment`
    pub kind: &'static str,
    /// `deployments`: the resource name in URLs and store keys.
    pub plural: &'static str,
    /// `deployment`: discovery's `singularName`, and the CLI's messages.
    pub singular: &'static str,
    /// `deploy`: other names the CLI (and kubectl, through discovery) accepts.
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    /// Names are DNS labels (`[a-z0-9-]`, as namespaces' are); otherwise DNS
    /// subdomains (labels joined by dots, at most 253 characters), as most kinds' are.
    pub names_are_dns_labels: bool,
    /// The fields `?fieldSelector=` may name besides `metadata.name` and
    /// `metadata.namespace` (Kubernetes' selectable fields of the kind).
    pub field_selectors: &'static [&'static str],
    /// Groups of resources a client can name at once (`all`).
    pub categories: &'static [&'static str],
    pub subresources: Subresources,
    /// The columns of a table of this kind, as Kubernetes' Table `columnDefinitions`
    /// (a CRD's `additionalPrinterColumns`, plus Name); empty: Name and Age.
    pub printer_columns: &'static [PrinterColumn],
    /// What a new object's `status` is, whatever the client sent.
    pub status_on_create: StatusOnCreate,
    /// Reads a JSON object into the kind's typed object (serde's message names a
    /// missing or mistyped field); [`Object::to_value`] is the way back.
    pub decode: fn(&serde_json::Value) -> Result<Object, FieldError>,
    /// Fills in what Kubernetes defaults when a client leaves it out (a Deployment's
    /// `spec.replicas: 1`), between decoding and validation, on every write.
    pub defaults: fn(&mut Object),
    /// The kind's own checks (metadata is checked for every kind), appended to `errors`.
    pub validate: fn(&Object, &mut Vec<FieldError>),
    /// What an update may not change (a Secret's data once `immutable` is set),
    /// checked with the stored object (`old`) after [`validate`](Self::validate).
    pub validate_update: fn(old: &Object, new: &Object, &mut Vec<FieldError>),
    /// Adds the kind's JSON schema (and those of its fields) to a generator's
    /// definitions, and returns the reference to it: what OpenAPI documents,
    /// `kubectl explain` and patches read about the kind's fields.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// The cells of the object's table row, one per printer column (wide ones
    /// included), as of a time (ages); [`cells::from_paths`](super::cells::from_paths)
    /// for a kind whose columns are all simple JSONPaths.
    pub cells: fn(&Object, std::time::SystemTime) -> super::cells::Cells,
    /// For a kind served in a second group version over another kind's objects
    /// (events.k8s.io/v1 Events are stored as core/v1 Events): the conversions
    /// between the stored form and this one. `None`: stored as served.
    pub conversion: Option<Conversion>,
}

/// Between a served form and the stored form of another kind, as plain JSON.
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    pub from_storage: fn(serde_json::Value) -> serde_json::Value,
    pub to_storage: fn(serde_json::Value) -> serde_json::Value,
}

/// The subresources a kind serves besides the object itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subresources {
    /// `<plural>/status`: writes there change only the status, writes to the object
    /// never change it.
    pub status: bool,
    /// `<plural>/scale`: an `autoscaling/v1` `Scale` over `spec.replicas`,
    /// `status.replicas` and `spec.selector.matchLabels`.
    pub scale: bool,
}

/// What the server does with the `status` of an object being created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOnCreate {
    /// Dropped: the controllers fill it in.
    Cleared,
    /// Kept as submitted (a node reports its own status when it registers).
    Submitted,
    /// `{"phase": <phase>}`, as a new namespace (`Active`) or pod (`Pending`) has.
    Phase(&'static str),
}

/// One column of a table, as Kubernetes' `TableColumnDefinition` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterColumn {
    /// `Up-to-date`; kubectl prints it upper-cased.
    pub name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: &'static str,
    /// The OpenAPI format: `name` for the column of object names, else empty.
    pub format: &'static str,
    /// `.status.replicas`: where the cell is read from, for a column a simple
    /// JSONPath gives; empty for a column computed from several fields.
    pub json_path: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only in the wide output (`-o wide`).
    pub priority: u8,
}

impl PrinterColumn {
    /// The object's name, the first column of every table.
    pub const NAME: PrinterColumn = PrinterColumn {
        name: "Name",
        type_: "string",
        format: "name",
        json_path: ".metadata.name",
        description: "The object's name, unique in its namespace.",
        priority: 0,
    };

    /// How long ago the object was created (`5m`).
    pub const AGE: PrinterColumn = PrinterColumn {
        name: "Age",
        type_: "date",
        format: "",
        json_path: ".metadata.creationTimestamp",
        description: "The time since the object was created.",
        priority: 0,
    };

    /// A column always shown.
    pub const fn new(
        name: &'static str,
        type_: &'static str,
        json_path: &'static str,
        description: &'static str,
    ) -> PrinterColumn {
        PrinterColumn {
            name,
            type_,
            format: "",
            json_path,
            description,
            priority: 0,
        }
    }

    /// A column of the wide output only.
    pub const fn wide(self) -> PrinterColumn {
        PrinterColumn { priority: 1, ..self }
    }
}

/// The columns of a kind that declares none, as Kubernetes shows a custom resource.
const DEFAULT_COLUMNS: &[PrinterColumn] = &[PrinterColumn::NAME, PrinterColumn::AGE];

// Function pointers do not compare reliably; a kind is named by its group, version
// and resource.
impl PartialEq for KindDescriptor {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
    }
}

impl Eq for KindDescriptor {}

impl KindDescriptor {
    /// `apps/v1`, or `v1` in the core group.
    pub fn api_version(&self) -> String {
        group_version(self.group, self.version)
    }

    /// `PodList`, `DeploymentList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The resource as Kubernetes names it in messages: `pods`, `deployments.apps`.
    pub fn qualified_resource(&self) -> String {
        qualify(self.plural, self.group)
    }

    /// `deployment.apps` or `pod`, as kubectl prefixes names in its messages.
    pub fn qualified_singular(&self) -> String {
        qualify(self.singular, self.group)
    }

    /// The declared columns, or Name and Age when the kind declares none.
    pub fn printer_columns(&self) -> &'static [PrinterColumn] {
        if self.printer_columns.is_empty() {
            DEFAULT_COLUMNS
        } else {
            self.printer_columns
        }
    }

    /// The store key of an object: `/registry/<plural>/<namespace>/<name>`, or
    /// `/registry/<plural>/<name>` for a cluster-scoped kind (the namespace is ignored).
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{namespace}/{name}", self.plural)
        } else {
            format!("/registry/{}/{name}", self.plural)
        }
    }

    /// The key prefix of every object of the kind, in one namespace or (`None`) in all.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.plural),
            _ => format!("/registry/{}/", self.plural),
        }
    }

    /// `/api/v1` or `/apis/<group>/<version>`: where the kind's group version is served.
    pub fn api_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection: in one namespace, or (`None`, or a cluster-scoped kind) all.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/namespaces/{ns}/{}", self.api_path(), self.plural),
            _ => format!("{}/{}", self.api_path(), self.plural),
        }
    }

    /// One object; `namespace` is ignored for cluster-scoped kinds.
    pub fn object_path(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection_path(Some(namespace)))
    }
}

/// `apps/v1`, or `v1` for the core group.
pub fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `name` qualified by its group, as Kubernetes prints it (`Deployment.apps`; core
/// names alone).
pub fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}
