package builder

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// healthOf is the Healthcheck of a raw image config as Docker reads it,
// StartInterval included.
type healthOf struct {
	Config struct {
		Healthcheck *struct {
			Test          []string
			Interval      time.Duration
			StartPeriod   time.Duration
			StartInterval time.Duration
		}
	} `json:"config"`
}

func rawHealth(t *testing.T, raw []byte) healthOf {
	t.Helper()
	var h healthOf
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("config %s: %v", raw, err)
	}
	return h
}

func rawConfig(t *testing.T, img v1.Image) []byte {
	t.Helper()
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestHealthcheckStartInterval checks that HEALTHCHECK --start-interval
// reaches the config as Docker writes it, that a stage, an image of the
// store and a pulled image pass it on as the rest of the healthcheck, and
// that a config without one is what go-containerregistry writes.
func TestHealthcheckStartInterval(t *testing.T) {
	tb := newTestBuild(t, baseFiles)
	res, _ := tb.mustBuild("FROM scratch\nHEALTHCHECK --interval=30s --start-interval=2s CMD check\n")
	raw := rawConfig(t, res.Image)
	h := rawHealth(t, raw).Config.Healthcheck
	if h == nil || h.StartInterval != 2*time.Second || h.Interval != 30*time.Second || len(h.Test) != 2 {
		t.Fatalf("healthcheck %+v in %s, want interval 30s and start interval 2s", h, raw)
	}

	wantInherited := func(t *testing.T, img v1.Image) {
		t.Helper()
		raw := rawConfig(t, img)
		if h := rawHealth(t, raw).Config.Healthcheck; h == nil || h.StartInterval != 2*time.Second || h.Interval != 30*time.Second {
			t.Errorf("healthcheck %+v in %s, want the base's with its start interval", h, raw)
		}
	}
	t.Run("stage", func(t *testing.T) {
		child, _ := tb.mustBuild("FROM scratch AS a\nHEALTHCHECK --interval=30s --start-interval=2s CMD check\nFROM a\nENV X=1\n")
		wantInherited(t, child.Image)
	})
	t.Run("store", func(t *testing.T) {
		if err := Tag(tb.store, res, []string{"local/hc"}); err != nil {
			t.Fatal(err)
		}
		child, _ := tb.mustBuild("FROM local/hc\nENV X=1\n")
		wantInherited(t, child.Image)
	})
	t.Run("registry", func(t *testing.T) {
		host, _ := countingRegistry(t)
		ref, err := name.ParseReference(host+"/hc:1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, res.Image); err != nil {
			t.Fatal(err)
		}
		// A fresh store: the base is pulled, not found locally.
		child, _ := newTestBuild(t, baseFiles).mustBuild("FROM " + host + "/hc:1\nENV X=1\n")
		wantInherited(t, child.Image)
	})
	t.Run("replaced", func(t *testing.T) {
		for _, hc := range []string{"HEALTHCHECK NONE", "HEALTHCHECK --interval=30s CMD other"} {
			child, _ := tb.mustBuild("FROM local/hc\n" + hc + "\n")
			raw := rawConfig(t, child.Image)
			if h := rawHealth(t, raw).Config.Healthcheck; h == nil || h.StartInterval != 0 {
				t.Errorf("%s: healthcheck %+v in %s, want the base's start interval gone", hc, h, raw)
			}
		}
	})
	t.Run("without", func(t *testing.T) {
		plain, _ := tb.mustBuild("FROM scratch\nHEALTHCHECK --interval=30s CMD check\n")
		raw := rawConfig(t, plain.Image)
		ggcr, err := json.Marshal(configOf(t, plain.Image))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, ggcr) {
			t.Errorf("config without a start interval\n%s\nis not go-containerregistry's\n%s", raw, ggcr)
		}
	})
	t.Run("skopeo", func(t *testing.T) {
		if _, err := exec.LookPath("skopeo"); err != nil {
			t.Skip("skopeo not installed")
		}
		archive := filepath.Join(t.TempDir(), "img.tar")
		f, err := os.Create(archive)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteOCIArchive(f, res.Image, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		// --raw: skopeo's own config type, the OCI spec's, has no
		// healthcheck; Docker reads the blob as it is.
		out, err := exec.Command("skopeo", "inspect", "--raw", "--config", "oci-archive:"+archive).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --raw --config: %v", err)
		}
		if h := rawHealth(t, out).Config.Healthcheck; h == nil || h.StartInterval != 2*time.Second {
			t.Errorf("skopeo reads healthcheck %+v from %s, want start interval 2s", h, out)
		}
	})
}
