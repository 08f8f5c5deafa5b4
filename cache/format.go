package cache

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The export format, version 1 (docs/cache.md). A cache is one OCI image
// manifest, pushed to a registry tag or kept in an OCI layout directory:
//
//	artifactType  application/vnd.strata.cache.v1
//	config        application/vnd.strata.cache.config.v1+json: Config
//	layers        the entries' layer blobs (the build's own media types),
//	              then the explain records (ExplainMediaType, gzipped JSON
//	              lines) and each exported cache mount (MountMediaType)
//
// Every registry that stores OCI image manifests stores it; nothing in it
// is executable by a runtime (its config is not an image config). An
// entry names its layer by index in the manifest's layers, so every blob
// it needs is referenced by the manifest and kept by the registry's
// garbage collection. The inline form is the same Config under the
// InlineKey of an image's config, its layers indexing the image's.
const (
	ArtifactType     = "application/vnd.strata.cache.v1"
	ConfigMediaType  = types.MediaType("application/vnd.strata.cache.config.v1+json")
	ExplainMediaType = types.MediaType("application/vnd.strata.cache.explain.v1+gzip")
	MountMediaType   = types.MediaType("application/vnd.strata.cache.mount.v1.tar+gzip")
	// InlineKey is the image config field holding inline records.
	InlineKey = "strata.cache.v1"
	// formatVersion is Config.Version; an import refuses others.
	formatVersion = 1
)

// Config is the cache's config blob: the entries, and the cache mounts.
type Config struct {
	Version int      `json:"version"`
	Entries []Record `json:"entries"`
	Mounts  []Mount  `json:"mounts,omitempty"`
}

// Record is one entry: the step's key, its layer (an index into the
// manifest's layers, -1 for a step that made none) with the layer's diffID,
// and its history entry.
type Record struct {
	Key     string     `json:"key"`
	Layer   int        `json:"layer"`
	DiffID  *v1.Hash   `json:"diffID,omitempty"`
	History v1.History `json:"history"`
}

// Mount is an exported cache mount: its id and the layer index of its
// content (a tar of the directory).
type Mount struct {
	ID    string `json:"id"`
	Layer int    `json:"layer"`
}
