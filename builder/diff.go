package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Difference is the first thing two images differ in, said as a user can
// act on it: the config field, or the layer (with the step that made it),
// the file and its attribute.
type Difference struct {
	// Where is "config" or "layer N of M (created by ...)".
	Where string
	// What names the field, or the file and attribute, with both values.
	What string
}

func (d *Difference) String() string { return d.Where + ": " + d.What }

// DiffImages compares two images and returns their first difference, or nil
// when the manifests are the same. Layers are compared entry by entry,
// uncompressed, so a difference of compression alone is named as such.
func DiffImages(ctx context.Context, a, b v1.Image) (*Difference, error) {
	da, err := a.Digest()
	if err != nil {
		return nil, err
	}
	db, err := b.Digest()
	if err != nil {
		return nil, err
	}
	if da == db {
		return nil, nil
	}
	if d, err := diffLayers(ctx, a, b); d != nil || err != nil {
		return d, err
	}
	if d, err := diffConfigs(a, b); d != nil || err != nil {
		return d, err
	}
	return &Difference{Where: "manifest", What: fmt.Sprintf("%s vs %s (layers and config are the same: the compressed layers differ)", da, db)}, nil
}

func diffConfigs(a, b v1.Image) (*Difference, error) {
	ra, err := a.RawConfigFile()
	if err != nil {
		return nil, err
	}
	rb, err := b.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if bytes.Equal(ra, rb) {
		return nil, nil
	}
	var ma, mb any
	if err := json.Unmarshal(ra, &ma); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(rb, &mb); err != nil {
		return nil, err
	}
	return &Difference{Where: "config", What: firstJSONDiff("", ma, mb)}, nil
}

// firstJSONDiff names the first path where two decoded JSON values differ.
func firstJSONDiff(at string, a, b any) string {
	switch va := a.(type) {
	case map[string]any:
		vb, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := slices.Sorted(maps.Keys(va))
		for k := range vb {
			if _, ok := va[k]; !ok {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			if d := firstJSONDiff(at+"."+k, va[k], vb[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		vb, ok := b.([]any)
		if !ok {
			break
		}
		for i := 0; i < max(len(va), len(vb)); i++ {
			var x, y any
			if i < len(va) {
				x = va[i]
			}
			if i < len(vb) {
				y = vb[i]
			}
			if d := firstJSONDiff(fmt.Sprintf("%s[%d]", at, i), x, y); d != "" {
				return d
			}
		}
		return ""
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if bytes.Equal(ja, jb) {
		return ""
	}
	return fmt.Sprintf("%s: %s vs %s", strings.TrimPrefix(at, "."), ja, jb)
}

func diffLayers(ctx context.Context, a, b v1.Image) (*Difference, error) {
	la, err := a.Layers()
	if err != nil {
		return nil, err
	}
	lb, err := b.Layers()
	if err != nil {
		return nil, err
	}
	cfg, _ := a.ConfigFile()
	for i := 0; i < min(len(la), len(lb)); i++ {
		ia, err := la[i].DiffID()
		if err != nil {
			return nil, err
		}
		ib, err := lb[i].DiffID()
		if err != nil {
			return nil, err
		}
		if ia == ib {
			continue
		}
		where := fmt.Sprintf("layer %d of %d%s", i+1, len(la), createdBy(cfg, i))
		what, err := diffLayerEntries(ctx, la[i], lb[i])
		if err != nil {
			return nil, fmt.Errorf("comparing %s: %w", where, err)
		}
		return &Difference{Where: where, What: what}, nil
	}
	if len(la) != len(lb) {
		return &Difference{Where: "layers", What: fmt.Sprintf("%d vs %d layers", len(la), len(lb))}, nil
	}
	return nil, nil
}

// createdBy names the step that made layer i, from the history.
func createdBy(cfg *v1.ConfigFile, i int) string {
	if cfg == nil {
		return ""
	}
	n := 0
	for _, h := range cfg.History {
		if h.EmptyLayer {
			continue
		}
		if n == i {
			return fmt.Sprintf(" (created by %s)", strings.TrimSuffix(h.CreatedBy, " # buildkit"))
		}
		n++
	}
	return ""
}

// diffLayerEntries reads two layers' tars side by side and names the first
// entry that differs, and how.
func diffLayerEntries(ctx context.Context, a, b v1.Layer) (string, error) {
	ra, err := a.Uncompressed()
	if err != nil {
		return "", err
	}
	defer ra.Close()
	rb, err := b.Uncompressed()
	if err != nil {
		return "", err
	}
	defer rb.Close()
	ta, tb := tar.NewReader(ra), tar.NewReader(rb)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		ha, ea, errA := nextEntry(ta)
		hb, eb, errB := nextEntry(tb)
		if errA != nil && !errors.Is(errA, io.EOF) {
			return "", errA
		}
		if errB != nil && !errors.Is(errB, io.EOF) {
			return "", errB
		}
		switch {
		case errA != nil && errB != nil:
			return "the entries are the same; the tar streams differ in padding or order of records", nil
		case errA != nil:
			return fmt.Sprintf("%s: only in the second image", hb.Name), nil
		case errB != nil:
			return fmt.Sprintf("%s: only in the first image", ha.Name), nil
		case ha.Name != hb.Name:
			return fmt.Sprintf("entry order: %s vs %s", ha.Name, hb.Name), nil
		}
		if d := diffHeaders(ha, hb, ea, eb); d != "" {
			return ha.Name + ": " + d, nil
		}
	}
}

func nextEntry(tr *tar.Reader) (*tar.Header, string, error) {
	h, err := tr.Next()
	if err != nil {
		return nil, "", err
	}
	s := sha256.New()
	if _, err := io.Copy(s, tr); err != nil {
		return nil, "", err
	}
	return h, hex.EncodeToString(s.Sum(nil)), nil
}

// diffHeaders names the first attribute two entries of one name differ in.
func diffHeaders(a, b *tar.Header, sumA, sumB string) string {
	type attr struct {
		name string
		x, y any
	}
	for _, at := range []attr{
		{"type", string(a.Typeflag), string(b.Typeflag)},
		{"mode", fmt.Sprintf("%o", a.Mode), fmt.Sprintf("%o", b.Mode)},
		{"owner", fmt.Sprintf("%d:%d", a.Uid, a.Gid), fmt.Sprintf("%d:%d", b.Uid, b.Gid)},
		{"owner names", a.Uname + ":" + a.Gname, b.Uname + ":" + b.Gname},
		{"link target", a.Linkname, b.Linkname},
		{"device", fmt.Sprintf("%d:%d", a.Devmajor, a.Devminor), fmt.Sprintf("%d:%d", b.Devmajor, b.Devminor)},
		{"size", a.Size, b.Size},
		{"content sha256", sumA, sumB},
		{"mtime", a.ModTime.UTC(), b.ModTime.UTC()},
		{"atime", a.AccessTime.UTC(), b.AccessTime.UTC()},
		{"ctime", a.ChangeTime.UTC(), b.ChangeTime.UTC()},
		{"PAX records", paxString(a.PAXRecords), paxString(b.PAXRecords)},
		{"format", a.Format.String(), b.Format.String()},
	} {
		if fmt.Sprint(at.x) != fmt.Sprint(at.y) {
			return fmt.Sprintf("%s %v vs %v", at.name, at.x, at.y)
		}
	}
	return ""
}

func paxString(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(parts, " ")
}
