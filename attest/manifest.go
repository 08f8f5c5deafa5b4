package attest

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go"
	ocispecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Names BuildKit and Docker use for attestation manifests.
const (
	// MediaTypeInToto is a statement layer's media type (in-toto's payload type).
	MediaTypeInToto types.MediaType = "application/vnd.in-toto+json"
	// AnnotationPredicateType on a layer names its statement's predicate type.
	AnnotationPredicateType = "in-toto.io/predicate-type"
	// AnnotationReferenceType and AnnotationReferenceDigest on the index descriptor of an
	// attestation manifest say what it is and which image manifest it is about.
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	// ReferenceTypeAttestation is AnnotationReferenceType's value.
	ReferenceTypeAttestation = "attestation-manifest"
	// ArtifactTypeAttestation is the artifactType of an attestation manifest in its OCI
	// 1.1 artifact form (BuildKit's oci-artifact=true).
	ArtifactTypeAttestation = "application/vnd.docker.attestation.manifest.v1+json"
)

// PlatformUnknown is the platform of an attestation manifest in an index: clients that
// pick an image by platform never pick it.
var PlatformUnknown = v1.Platform{Architecture: "unknown", OS: "unknown"}

// Manifest lays the statements out as BuildKit's image exporter does next to the image
// manifest subject names: an OCI image manifest whose config is an image config of
// platform unknown/unknown listing the statements as diff IDs, and whose layers are the
// statements, uncompressed (application/vnd.in-toto+json, annotated with their predicate
// type). It returns the manifest as an image (every blob in it) and the descriptor to
// put in the image index: platform unknown/unknown, annotated
// vnd.docker.reference.type=attestation-manifest and vnd.docker.reference.digest=<the
// subject's digest>. Add both to the index with
//
//	mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: desc})
//
// after the image manifests, which is where BuildKit puts them.
func Manifest(subject v1.Descriptor, statements ...Statement) (v1.Image, v1.Descriptor, error) {
	img, err := build(subject, false, statements)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("attestation manifest: %w", err)
	}
	p := PlatformUnknown
	desc.Platform = &p
	desc.ArtifactType = "" // BuildKit's index entries have none
	desc.Annotations = map[string]string{
		AnnotationReferenceType:   ReferenceTypeAttestation,
		AnnotationReferenceDigest: subject.Digest.String(),
	}
	return img, *desc, nil
}

// Referrer is Manifest's OCI 1.1 artifact form, for --attest-referrers: the same
// statement layers, an empty config (application/vnd.oci.empty.v1+json), artifactType
// application/vnd.docker.attestation.manifest.v1+json and subject the image manifest.
// Pushed with remote.Write, the registry lists it among the subject's referrers, or, when
// it has no referrers API, go-containerregistry adds it to the sha256-<hex> fallback tag's
// index, where `oras discover`, cosign and remote.Referrers find it.
func Referrer(subject v1.Descriptor, statements ...Statement) (v1.Image, error) {
	return build(subject, true, statements)
}

func build(subject v1.Descriptor, artifact bool, statements []Statement) (v1.Image, error) {
	if len(statements) == 0 {
		return nil, fmt.Errorf("attestation manifest for %s: no statement", subject.Digest)
	}
	if subject.Digest.Hex == "" || subject.MediaType == "" || subject.Size <= 0 {
		return nil, fmt.Errorf("attestation manifest: subject descriptor %q lacks digest, media type or size", subject.Digest)
	}
	im := &image{blobs: map[v1.Hash]v1.Layer{}}
	layers := make([]ocispecv1.Descriptor, len(statements))
	var diffIDs []digest.Digest
	for i, st := range statements {
		if st.PredicateType == "" {
			return nil, fmt.Errorf("attestation manifest for %s: statement %d has no predicate type", subject.Digest, i)
		}
		data, err := json.Marshal(st)
		if err != nil {
			return nil, fmt.Errorf("attestation manifest for %s: statement %s: %w", subject.Digest, st.PredicateType, err)
		}
		l := static.NewLayer(data, MediaTypeInToto)
		h, _ := l.Digest() // static layers hash in memory: no error
		im.blobs[h] = l
		d := digest.FromBytes(data)
		layers[i] = ocispecv1.Descriptor{
			MediaType:   string(MediaTypeInToto),
			Digest:      d,
			Size:        int64(len(data)),
			Annotations: map[string]string{AnnotationPredicateType: st.PredicateType},
		}
		diffIDs = append(diffIDs, d)
	}

	var configDesc ocispecv1.Descriptor
	if artifact {
		configDesc = ocispecv1.DescriptorEmptyJSON
		im.config = configDesc.Data
	} else {
		cfg := ocispecv1.Image{
			Platform: ocispecv1.Platform{Architecture: "unknown", OS: "unknown"},
			RootFS:   ocispecv1.RootFS{Type: "layers", DiffIDs: diffIDs},
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("attestation manifest config: %w", err)
		}
		im.config = b
		configDesc = ocispecv1.Descriptor{
			MediaType: ocispecv1.MediaTypeImageConfig,
			Digest:    digest.FromBytes(b),
			Size:      int64(len(b)),
		}
	}
	cl := static.NewLayer(im.config, types.MediaType(configDesc.MediaType))
	ch, _ := cl.Digest()
	im.blobs[ch] = cl

	m := ocispecv1.Manifest{
		Versioned: ocispec.Versioned{SchemaVersion: 2},
		MediaType: ocispecv1.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    layers,
	}
	if artifact {
		m.ArtifactType = ArtifactTypeAttestation
		m.Subject = &ocispecv1.Descriptor{
			MediaType: string(subject.MediaType),
			Digest:    digest.Digest(subject.Digest.String()),
			Size:      subject.Size,
		}
	}
	// BuildKit writes manifests indented by two spaces; so does this, for the same bytes.
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	im.manifest = raw
	return partial.CompressedToImage(im)
}

// image is an attestation manifest held in memory: its statements are small.
type image struct {
	manifest, config []byte
	blobs            map[v1.Hash]v1.Layer
}

func (i *image) RawManifest() ([]byte, error)   { return i.manifest, nil }
func (i *image) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := i.blobs[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("attestation manifest: no blob %s", h)
}

// Statements reads the statements back from an attestation manifest (either form), in
// layer order: what a consumer such as `docker buildx imagetools inspect` does.
func Statements(img v1.Image) ([]Statement, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("attestation manifest: %w", err)
	}
	var out []Statement
	for _, d := range m.Layers {
		if d.MediaType != MediaTypeInToto {
			continue
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("attestation layer %s: %w", d.Digest, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("attestation layer %s: %w", d.Digest, err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("attestation layer %s: %w", d.Digest, err)
		}
		var st Statement
		if err := json.Unmarshal(buf.Bytes(), &st); err != nil {
			return nil, fmt.Errorf("attestation layer %s: %w", d.Digest, err)
		}
		if st.PredicateType != d.Annotations[AnnotationPredicateType] {
			return nil, fmt.Errorf("attestation layer %s: predicate type %q, annotation says %q", d.Digest, st.PredicateType, d.Annotations[AnnotationPredicateType])
		}
		out = append(out, st)
	}
	return out, nil
}
