package attest_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-build/strata/attest"
)

// Example shows a two-platform build's index with BuildKit's attestations: the images
// first, then one attestation manifest per image.
func Example() {
	ctx := context.Background()
	epoch := time.Unix(0, 0) // SOURCE_DATE_EPOCH=0
	tags := []string{"registry.example.com/app:1.0"}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var atts []mutate.IndexAddendum
	for _, platform := range []string{"linux/amd64", "linux/arm64"} {
		// img is the platform's built image, desc its descriptor.
		p, _ := v1.ParsePlatform(platform)
		img, _ := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
			&v1.ConfigFile{OS: p.OS, Architecture: p.Architecture})
		desc, _ := partial.Descriptor(img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})

		subjects, _ := attest.Subjects(tags, platform, desc.Digest)
		prov, _ := attest.Provenance(subjects, attest.BuildInfo{
			Mode: "min", DockerfileName: "Dockerfile", BuildPlatform: "linux/amd64", TargetPlatform: platform,
			Started: epoch, Finished: epoch,
		})
		sbom, _ := attest.SBOM(ctx, subjects, img, attest.SBOMOptions{Created: epoch, Creator: "strata-dev"})
		att, attDesc, err := attest.Manifest(*desc, prov, sbom)
		if err != nil {
			panic(err)
		}
		atts = append(atts, mutate.IndexAddendum{Add: att, Descriptor: attDesc})
	}
	idx = mutate.AppendManifests(idx, atts...)

	m, _ := idx.IndexManifest()
	for _, d := range m.Manifests {
		fmt.Println(strings.TrimSpace(d.Platform.OS + "/" + d.Platform.Architecture + " " + d.Annotations[attest.AnnotationReferenceType]))
	}
	// Output:
	// linux/amd64
	// linux/arm64
	// unknown/unknown attestation-manifest
	// unknown/unknown attestation-manifest
}
