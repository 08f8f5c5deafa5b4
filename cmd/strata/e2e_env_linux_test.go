package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sharedRootfs holds third-party rootfs tarballs (see its PROVENANCE.md); optional. It is
// /work/shared/rootfs beside the checkout, three levels up from this package.
const sharedRootfs = "../../../shared/rootfs"

// The third-party tarballs the cases may ask for, by the name they get in a build context.
var sharedFiles = map[string]string{
	"alpine.tar.gz":        "alpine-minirootfs-3.20.3-x86_64.tar.gz",
	"busybox-glibc.tar.gz": "busybox-1.38.0-glibc-amd64-rootfs.tar.gz",
	"busybox-musl.tar.gz":  "busybox-1.38.0-musl-amd64-rootfs.tar.gz",
}

// e2eEnv is what every end-to-end check shares: the built binaries, the running registry and
// the generated base files.
type e2eEnv struct {
	strata   string      // the strata binary under test
	registry string      // host:port of the local registry
	regLog   *syncBuffer // the registry's output, access log included
	busybox  string      // the mkrootfs tarball
	fileURL  string      // a file served over HTTP on 127.0.0.1, for ADD <url>
	shared   map[string]string
	// multiBase is a two-platform (linux/amd64, linux/arm64) busybox in the registry, "" when
	// this machine cannot make or run one; multiSkip then says why.
	multiBase, multiSkip string
	work                 string // scratch space for the whole run
	tmp                  string // TMPDIR of every strata process
}

// needTools skips the suite when it cannot run here, naming what is missing.
func needTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end tests skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root (overlay mounts, namespaces, runc)")
	}
	var missing []string
	for _, tool := range []string{"docker-registry", "skopeo", "umoci", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		missing = append(missing, "/bin/busybox (busybox-static)")
	}
	if len(missing) > 0 {
		t.Skipf("end-to-end tests need %s; run testdata/install-test-deps.sh", strings.Join(missing, ", "))
	}
}

// setupEnv builds the binaries, makes the busybox rootfs and starts and seeds the registry.
// Everything is torn down by t.Cleanup.
func setupEnv(t *testing.T) *e2eEnv {
	t.Helper()
	work := t.TempDir()
	env := &e2eEnv{work: work, tmp: filepath.Join(work, "tmp"), shared: map[string]string{}}
	if err := os.Mkdir(env.tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	env.strata = goBuild(t, work, "github.com/strata-build/strata/cmd/strata")
	mkrootfs := goBuild(t, work, "github.com/strata-build/strata/cmd/mkrootfs")
	env.busybox = filepath.Join(work, "busybox.tar.gz")
	if out, err := exec.Command(mkrootfs, env.busybox).CombinedOutput(); err != nil {
		t.Fatalf("mkrootfs: %v\n%s", err, out)
	}
	for ctxName, file := range sharedFiles {
		p, err := filepath.Abs(filepath.Join(sharedRootfs, file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err == nil {
			env.shared[ctxName] = p
		}
	}
	env.registry, env.regLog = startRegistry(t, filepath.Join(work, "registry"))
	env.fileURL = serveFile(t, "downloaded over http\n")
	env.seed(t)
	return env
}

func goBuild(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, "bin", filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	// The shipped binary is static: the sandbox init drops privileges on every thread only
	// without cgo.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const registryYAML = `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`

// startRegistry runs Debian's docker-registry on 127.0.0.1 only, with its storage in dir, and
// waits until /v2/ answers.
func startRegistry(t *testing.T, dir string) (string, *syncBuffer) {
	t.Helper()
	r := startRegistryWith(t, dir, "")
	return r.addr, r.log
}

// registryProc is a running docker-registry: its address, its output (the access log
// included) and how to stop it before the test ends.
type registryProc struct {
	addr string
	log  *syncBuffer
	stop func()
}

// startRegistryWith starts a docker-registry whose configuration has extra appended (an auth
// section, say).
func startRegistryWith(t *testing.T, dir, extra string) *registryProc {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, append(fmt.Appendf(nil, registryYAML, filepath.Join(dir, "data"), addr), extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(stop)
	if err := waitRegistry(addr, exited); err != nil {
		t.Fatalf("docker-registry on %s: %v\n%s", addr, err, logs.String())
	}
	return &registryProc{addr: addr, log: logs, stop: stop}
}

// syncBuffer is a bytes.Buffer the registry writes to while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitRegistry polls /v2/ until it answers; readiness is a condition, not a duration, so the
// deadline is only there to stop a registry that never comes up.
func waitRegistry(addr string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			// 401: up, and asking for credentials.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("/v2/ did not answer within 30s")
}

// seed pushes the base images the cases pull: busybox from mkrootfs always, the third-party
// rootfs tarballs when present. go-containerregistry writes them, so the seeding does not
// depend on the code under test. The mkrootfs images are OCI, the others Docker schema 2, so
// both kinds of base manifest are pulled.
func (e *e2eEnv) seed(t *testing.T) {
	t.Helper()
	seeds := []struct {
		ref, file string
		oci       bool
	}{
		{"busybox:latest", e.busybox, true},
		// busybox under a name no other test pulls, so its requests can be counted.
		{"pullonce:latest", e.busybox, true},
		{"alpine:3.20.3", e.shared["alpine.tar.gz"], false},
		{"busybox:1.38.0-glibc", e.shared["busybox-glibc.tar.gz"], false},
		{"busybox:1.38.0-musl", e.shared["busybox-musl.tar.gz"], false},
	}
	e.multiBase, e.multiSkip = e.seedMultiPlatform(t)
	for _, s := range seeds {
		if s.file == "" {
			continue // not in shared/rootfs; the cases that need it skip
		}
		if err := e.pushBase(s.ref, s.file, s.oci); err != nil {
			t.Fatalf("seeding %s: %v", s.ref, err)
		}
	}
}

func (e *e2eEnv) pushBase(ref, file string, oci bool) error {
	img, err := baseImage(file, oci, []string{"/bin/sh"})
	if err != nil {
		return err
	}
	r, err := name.ParseReference(e.registry + "/" + ref)
	if err != nil {
		return err
	}
	return remote.Write(r, img, remote.WithContext(context.Background()))
}

// baseImage makes a one-layer image of a rootfs tarball with go-containerregistry.
func baseImage(file string, oci bool, cmd []string) (v1.Image, error) {
	base, layerOpts := empty.Image, []tarball.LayerOption(nil)
	if oci {
		base = mutate.ConfigMediaType(mutate.MediaType(base, types.OCIManifestSchema1), types.OCIConfigJSON)
		layerOpts = append(layerOpts, tarball.WithMediaType(types.OCILayer))
	}
	l, err := tarball.LayerFromFile(file, layerOpts...)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	img, err := mutate.Append(base, mutate.Addendum{Layer: l, History: v1.History{
		Created: created, CreatedBy: "ADD " + filepath.Base(file) + " / # seeded by the e2e test"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = created
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = cmd
	return mutate.ConfigFile(img, cf)
}

// serveFile serves content as /file.txt on 127.0.0.1 until the test ends.
func serveFile(t *testing.T, content string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/file.txt" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, content)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/file.txt"
}

// base is the registry reference of a seeded image, as the cases' ARG BASE takes it.
func (e *e2eEnv) base(ref string) string { return e.registry + "/" + ref }
