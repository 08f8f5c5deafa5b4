package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// testCheckRepro builds with --check-repro: a reproducible Dockerfile passes and its archive
// is written; one whose RUN writes random bytes fails naming the layer, the step, the file
// and the attribute.
func (e *e2eEnv) testCheckRepro(t *testing.T) {
	ctxDir := e.context(t, "check-repro", nil)
	archive := filepath.Join(t.TempDir(), "image.tar")
	r := e.mustBuild(t, "--check-repro", "--root", filepath.Join(t.TempDir(), "store"), "--build-arg", "BASE="+e.base("busybox:latest"),
		"-o", "type=oci,dest="+archive, ctxDir)
	if !strings.Contains(r.stderr, "check-repro: reproducible: both builds gave sha256:") {
		t.Errorf("no verdict in the output:\n%s", r.stderr)
	}
	if got := runImage(t, archive); got != "hi\n" {
		t.Errorf("the archive written after the check runs as %q", got)
	}
	r = e.run(nil, nil, "build", "--progress", "plain", "--check-repro", "--build-arg", "NOISE=1",
		"--build-arg", "BASE="+e.base("busybox:latest"), ctxDir)
	checkFailure(t, r, []string{`not reproducible: sha256:\w+ vs sha256:\w+: layer \d+ of \d+ \(created by RUN .*\): a/uuid: content sha256 \w+ vs \w+$`})
}
