package cache

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/layer"
	"github.com/strata-build/strata/registry"
	"github.com/strata-build/strata/store"
)

// Imported is a cache read from a registry (an export, or an image's inline
// records) or from an OCI layout directory: its entries by key, whose
// layers are read only when something needs their bytes.
type Imported struct {
	name    string
	entries map[string]*Entry
	// explain is the blob of explain records, read on the first Similar.
	explain     *layer.Layer
	explainOnce sync.Once
	explains    []*Explain
	explainErr  error
	mounts      map[string]*layer.Layer
}

// maxMetadata bounds what an import reads of a manifest, config or
// explain blob: a registry that lies cannot make the build read without
// end.
const maxMetadata = 64 << 20

// Import reads the cache spec names (type registry or local) for a build on
// platform. An error means the cache cannot be used at all (the caller
// builds without it and says so); warnings name entries left out (a layer
// missing or not as described), which are never used.
func Import(ctx context.Context, spec Spec, blobs *registry.Blobs, platform v1.Platform) (*Imported, []string, error) {
	switch spec.Type {
	case "registry":
		return importRegistry(ctx, spec, blobs, platform)
	case "local":
		return importLocal(spec, blobs)
	}
	return nil, nil, fmt.Errorf("cannot import a cache of type %s", spec.Type)
}

// source is what reading a cache needs from where it is kept.
type source struct {
	name string
	// size is the size of a blob, or an error when it is missing.
	size func(v1.Hash) (int64, error)
	// layer is the lazy layer of a blob.
	layer func(d v1.Descriptor, diffID v1.Hash) (*layer.Layer, error)
}

func importRegistry(ctx context.Context, spec Spec, blobs *registry.Blobs, platform v1.Platform) (*Imported, []string, error) {
	cfg := blobs.Config()
	ref, err := cfg.ParseRef(spec.Ref)
	if err != nil {
		return nil, nil, err
	}
	opts := append(cfg.RemoteOptions(ctx), remote.WithPlatform(platform))
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, nil, registryError(err)
	}
	if !desc.MediaType.IsIndex() && !desc.MediaType.IsImage() && desc.MediaType != types.OCIManifestSchema1 {
		return nil, nil, fmt.Errorf("%s is a %s, not a cache or an image", spec.Ref, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, registryError(err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, registryError(err)
	}
	if m.Config.Size > maxMetadata {
		return nil, nil, fmt.Errorf("its config is %d bytes, more than a cache holds", m.Config.Size)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, nil, registryError(err)
	}
	repo := ref.Context()
	checker, err := cfg.NewBlobChecker(ctx, repo)
	if err != nil {
		return nil, nil, registryError(err)
	}
	src := source{
		name: spec.Ref,
		size: checker.Size,
		layer: func(d v1.Descriptor, diffID v1.Hash) (*layer.Layer, error) {
			return blobs.Layer(d, diffID, repo)
		},
	}
	if m.Config.MediaType == ConfigMediaType {
		return read(src, m, raw, nil)
	}
	return readInline(src, m, raw)
}

// registryError is err in one line, saying what a status means.
func registryError(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case 401, 403:
			return fmt.Errorf("not authorized (%d): log in with docker login or check the credentials in ~/.docker/config.json", te.StatusCode)
		case 404:
			return fmt.Errorf("not found")
		}
	}
	return err
}

// readInline reads an image's inline records: the layers are the image's,
// and each record's diffID must be the one the image's config gives.
func readInline(src source, m *v1.Manifest, raw []byte) (*Imported, []string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, fmt.Errorf("reading its config: %w", err)
	}
	inline, ok := fields[InlineKey]
	if !ok {
		return nil, nil, fmt.Errorf("neither a strata cache nor an image with inline cache records (build it with --cache-to type=inline)")
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, nil, fmt.Errorf("reading its config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, nil, fmt.Errorf("its manifest lists %d layers, its config %d", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	return read(src, m, inline, cfg.RootFS.DiffIDs)
}

// read makes the entries of a cache config whose layers index m's, leaving
// out (with a warning) those whose layer is missing or not as described: a
// blob the registry lacks or sizes otherwise, a blob two records give
// different diffIDs, or (inline) a diffID that is not the image's.
func read(src source, m *v1.Manifest, raw []byte, diffIDs []v1.Hash) (*Imported, []string, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, fmt.Errorf("reading its records: %w", err)
	}
	if c.Version != formatVersion {
		return nil, nil, fmt.Errorf("cache format version %d; this strata reads version %d", c.Version, formatVersion)
	}
	imp := &Imported{name: src.name, entries: map[string]*Entry{}, mounts: map[string]*layer.Layer{}}
	var warnings []string
	// Check each blob the records use once, a few at a time.
	used := map[int]bool{}
	for _, r := range c.Entries {
		if r.Layer >= 0 && r.Layer < len(m.Layers) {
			used[r.Layer] = true
		}
	}
	for _, mt := range c.Mounts {
		if mt.Layer >= 0 && mt.Layer < len(m.Layers) {
			used[mt.Layer] = true
		}
	}
	for i, d := range m.Layers {
		if d.MediaType == ExplainMediaType {
			used[i] = true
		}
	}
	bad := checkBlobs(src, m.Layers, used)
	// One blob has one diffID: records that disagree are all suspect.
	type naming struct {
		diffID v1.Hash
		index  int
	}
	named := map[v1.Hash]naming{}
	for _, r := range c.Entries {
		if r.Layer < 0 || r.Layer >= len(m.Layers) || r.DiffID == nil || bad[r.Layer] != "" {
			continue
		}
		d := m.Layers[r.Layer].Digest
		if diffIDs != nil && *r.DiffID != diffIDs[r.Layer] {
			bad[r.Layer] = fmt.Sprintf("layer %s has diffID %s in the image, %s in the cache", d, diffIDs[r.Layer], *r.DiffID)
			continue
		}
		if prev, ok := named[d]; ok && prev.diffID != *r.DiffID {
			why := fmt.Sprintf("layer %s is given two diffIDs", d)
			bad[r.Layer], bad[prev.index] = why, why
			continue
		}
		named[d] = naming{*r.DiffID, r.Layer}
	}
	dropped := map[string]int{}
	for _, r := range c.Entries {
		e := &Entry{History: r.History}
		if r.Layer != -1 {
			why := ""
			switch {
			case r.Layer < 0 || r.Layer >= len(m.Layers):
				why = fmt.Sprintf("layer index %d out of range", r.Layer)
			case bad[r.Layer] != "":
				why = bad[r.Layer]
			case r.DiffID == nil:
				why = "a layer without a diffID"
			}
			if why != "" {
				dropped[why]++
				continue
			}
			l, err := src.layer(m.Layers[r.Layer], *r.DiffID)
			if err != nil {
				dropped[err.Error()]++
				continue
			}
			e.Layer = l
		}
		imp.entries[r.Key] = e
	}
	if len(dropped) > 0 {
		// One line however many: the first reason, and how many others.
		reasons := slices.Sorted(maps.Keys(dropped))
		n := 0
		for _, k := range reasons {
			n += dropped[k]
		}
		line := fmt.Sprintf("cache %s: ignoring %d entries: %s", src.name, n, reasons[0])
		if len(reasons) > 1 {
			line += fmt.Sprintf(" (and %d other reasons)", len(reasons)-1)
		}
		warnings = append(warnings, line)
	}
	for i, d := range m.Layers {
		if d.MediaType != ExplainMediaType {
			continue
		}
		if bad[i] != "" {
			warnings = append(warnings, fmt.Sprintf("cache %s: its explain records are unusable: %s", src.name, bad[i]))
			continue
		}
		d.MediaType = types.OCILayer // gzip, read by layer.Layer
		imp.explain, _ = src.layer(d, v1.Hash{})
	}
	badMounts := 0
	for _, mt := range c.Mounts {
		if mt.Layer < 0 || mt.Layer >= len(m.Layers) || bad[mt.Layer] != "" {
			badMounts++
			continue
		}
		d := m.Layers[mt.Layer]
		d.MediaType = types.OCILayer
		if l, err := src.layer(d, v1.Hash{}); err == nil {
			imp.mounts[mt.ID] = l
		}
	}
	if badMounts > 0 {
		warnings = append(warnings, fmt.Sprintf("cache %s: ignoring %d cache mounts: their blobs are missing or not as described", src.name, badMounts))
	}
	return imp, warnings, nil
}

// checkBlobs asks for the size of each used blob, eight at a time, and says
// why each that cannot be used cannot.
func checkBlobs(src source, ds []v1.Descriptor, used map[int]bool) map[int]string {
	bad := map[int]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range used {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d := ds[i]
			n, err := src.size(d.Digest)
			why := ""
			switch {
			case errors.Is(err, registry.ErrBlobUnknown), errors.Is(err, store.ErrNotFound):
				why = fmt.Sprintf("layer %s is missing", d.Digest)
			case err != nil:
				why = fmt.Sprintf("layer %s: %v", d.Digest, registryError(err))
			case n >= 0 && n != d.Size:
				why = fmt.Sprintf("layer %s has %d bytes, the cache says %d", d.Digest, n, d.Size)
			}
			if why != "" {
				mu.Lock()
				bad[i] = why
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return bad
}

// Get is the imported entry for key.
func (c *Imported) Get(_ context.Context, key string) (*Entry, error) {
	return c.entries[key], nil
}

// Put does nothing: an imported cache is read-only; exports go through
// Export.
func (c *Imported) Put(context.Context, string, *Entry) error { return nil }

// Name is the cache's reference or directory.
func (c *Imported) Name() string { return c.name }

// Len is the number of usable entries.
func (c *Imported) Len() int { return len(c.entries) }

// Mount is the content of the exported cache mount id, if the cache has it.
func (c *Imported) Mount(id string) *layer.Layer { return c.mounts[id] }

// Similar are the imported explain records for e's place or instruction;
// the explain blob is read the first time.
func (c *Imported) Similar(_ context.Context, e *Explain) ([]*Explain, error) {
	c.explainOnce.Do(func() {
		if c.explain == nil {
			return
		}
		if c.explains, c.explainErr = readExplains(c.explain); c.explainErr != nil {
			c.explainErr = fmt.Errorf("cache %s: its explain records cannot be read: %w", c.name, c.explainErr)
		}
	})
	if c.explainErr != nil {
		return nil, c.explainErr
	}
	var out []*Explain
	for _, x := range c.explains {
		if x.Key != e.Key && (x.Stage == e.Stage && x.Step == e.Step || x.Command == e.Command) {
			out = append(out, x)
		}
	}
	return out, nil
}

// maxExplain bounds the explain records read, uncompressed, and each one.
const maxExplain, maxExplainRecord = 64 << 20, 16 << 20

func readExplains(l *layer.Layer) ([]*Explain, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(io.LimitReader(rc, maxMetadata))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(io.LimitReader(zr, maxExplain))
	sc.Buffer(make([]byte, 64<<10), maxExplainRecord)
	var out []*Explain
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var x Explain
		if err := json.Unmarshal(line, &x); err != nil {
			return out, err
		}
		out = append(out, &x)
	}
	return out, sc.Err()
}

// encodeExplains is the explain blob: gzipped JSON lines.
func encodeExplains(xs []*Explain) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	for _, x := range xs {
		if err := enc.Encode(x); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
