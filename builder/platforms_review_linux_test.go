package builder

import (
	"context"
	"slices"
	"testing"
)

// An image built FROM a build-platform stage is the target's image: its
// config and its index entry name the target platform, as BuildKit
// labels the image of an explicit --platform, never the build host's.
func TestBuildPlatformsLabelTheTarget(t *testing.T) {
	tb := newTestBuild(t, map[string]string{"a.txt": "a"})
	src := `FROM --platform=$BUILDPLATFORM scratch AS build
COPY a.txt /a

FROM build
ENV X=1
`
	plats := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}
	res, out, err := tb.buildPlatforms(src, plats)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ir, err := StoreIndex(context.Background(), tb.store, res, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ir.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, d := range im.Manifests {
		got = append(got, platformOf(*d.Platform))
		cfg := configOf(t, res[i].Image)
		if p := configPlatform(*cfg); p != plats[i] {
			t.Errorf("image %d's config is %s, want %s", i, p, plats[i])
		}
	}
	if !slices.Equal(got, plats) {
		t.Errorf("index platforms %v, want %v", got, plats)
	}
}
