package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttestFlagsAsBuildx: the attestation flags combine as docker buildx build combines
// them: it lists the --attest values, then --provenance, then --sbom, and of each type
// the first one given counts (its Attests.ToMap), a disabled one included; true, 1 and
// false are shorthands, a spec without mode= is mode=min.
func TestAttestFlagsAsBuildx(t *testing.T) {
	for _, tt := range []struct {
		provenance, sbom string
		attests          []string
		want             attestOptions
	}{
		{provenance: "true", want: attestOptions{provenance: "min"}},
		{provenance: "1", want: attestOptions{provenance: "min"}},
		{provenance: "mode=max", want: attestOptions{provenance: "max"}},
		{provenance: "mode=max,version=v0.2", want: attestOptions{provenance: "max", version: "v0.2"}},
		{provenance: "false", want: attestOptions{}},
		{sbom: "true", want: attestOptions{sbom: true}},
		{attests: []string{"type=provenance,mode=max"}, want: attestOptions{provenance: "max"}},
		{attests: []string{"type=provenance"}, want: attestOptions{provenance: "min"}},
		{attests: []string{"type=sbom"}, want: attestOptions{sbom: true}},
		{attests: []string{"type=sbom,disabled=true"}, want: attestOptions{}},
		// --attest comes first in buildx's list, so it wins over the shorthand.
		{sbom: "false", attests: []string{"type=sbom"}, want: attestOptions{sbom: true}},
		{provenance: "mode=max", attests: []string{"type=provenance,mode=min"}, want: attestOptions{provenance: "min"}},
		{provenance: "true", attests: []string{"type=provenance,disabled=true"}, want: attestOptions{}},
		// Of two --attest of a type, the first.
		{attests: []string{"type=sbom", "type=sbom,disabled=true"}, want: attestOptions{sbom: true}},
		{attests: []string{"type=sbom,disabled=true", "type=sbom"}, want: attestOptions{}},
		{attests: []string{"type=provenance,mode=max", "type=provenance,mode=min"}, want: attestOptions{provenance: "max"}},
		{attests: []string{"type=provenance,mode=max", "type=sbom"}, want: attestOptions{provenance: "max", sbom: true}},
		// The user's claim, as BuildKit takes it.
		{provenance: "mode=max,reproducible=true", want: attestOptions{provenance: "max", reproducible: true}},
		// docker/build-push-action names the CI run so: builder.id.
		{attests: []string{"type=provenance,mode=min,builder-id=https://ci.example.com/run/1"}, want: attestOptions{provenance: "min", builderID: "https://ci.example.com/run/1"}},
	} {
		name := "--provenance=" + tt.provenance + " --sbom=" + tt.sbom + " --attest " + strings.Join(tt.attests, " --attest ")
		o := &buildOptions{dockerFlags: dockerFlags{provenance: tt.provenance, sbom: tt.sbom, attests: tt.attests}}
		if err := o.checkAttestations(); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if o.attest != tt.want {
			t.Errorf("%s: %+v, want %+v (as buildx)", name, o.attest, tt.want)
		}
	}
}

// TestAttestReferrersNeedRegistry: --attest-referrers without a registry output would push
// nothing: refused in one line naming the fix, before the store is touched.
func TestAttestReferrersNeedRegistry(t *testing.T) {
	ctx := writeContext(t, "FROM scratch\nLABEL a=b\n")
	dest := filepath.Join(t.TempDir(), "out.tar")
	for _, args := range [][]string{
		{"--sbom=true", "--attest-referrers", "-o", "type=oci,dest=" + dest},
		{"--provenance=mode=max", "--attest-referrers", "-t", "reg.example.com/app:1"},
	} {
		root := filepath.Join(t.TempDir(), "store")
		_, err := runCLI(t, append(append([]string{"build", "--root", root}, args...), ctx)...)
		if err == nil || !strings.Contains(err.Error(), "--attest-referrers") || !strings.Contains(err.Error(), "--push") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line naming --attest-referrers and --push", args, err)
		}
		if _, serr := os.Stat(root); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%v: the store was touched before the flag was refused: %v", args, serr)
		}
	}
}
