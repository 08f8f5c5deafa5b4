package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/strata-build/strata/dockerfile"
	"github.com/strata-build/strata/executor"
)

// cacheVersion changes whenever what a key covers or an entry holds
// changes, so entries from an older strata are never misread.
// v2: COPY keys every attribute the writer copies (owners, devices, hard
// links, xattrs); metadata steps no longer advance the filesystem chain.
// v3: COPY keys its destination and --chown as written, not resolved in
// the image, so no key needs the image's layers (a registry cache hit
// downloads nothing).
const cacheVersion = "strata-cache-v3"

// What a step's key covers. Each input is read by the same code that
// uses it, so nothing can change a step's output without changing its key:
//
//   - Parent: the key of the filesystem the step starts from: the base
//     (scratch and the platform, or an image's manifest digest, or the
//     parent stage's key) and every earlier RUN, COPY, ADD and WORKDIR.
//     Metadata steps (ENV, ARG, LABEL, USER, ...) do not change it: a step
//     that depends on them keys what it reads of them itself, as BuildKit's
//     operations do, so a new LABEL or an unused build arg keeps later
//     COPYs cached.
//   - Platform, Kind, Command (the instruction with its words expanded:
//     sources, destination, --chown, --chmod, --from, flags) and Layer (the
//     compression and SOURCE_DATE_EPOCH layers are written with), for all.
//   - RUN (Run): the executor.Spec it runs with (runSpec: argv through the
//     stage's SHELL, environment, working directory, user, network,
//     hostname, --add-host, --ulimit, --shm-size) less what cannot change its result (the step's own
//     directories, the output writers, the --build-arg proxy variables,
//     which Docker keeps out of keys too); the mounts' flags and the
//     content their binds expose (mountsKey); and the history text (it
//     lists the build args).
//   - COPY and ADD (Copy): the plan the writer executes, field by field
//     (planned and srcFile: destination, kind, mode, owner where kept,
//     size, sha256, link target, device number, kept xattrs, hard-link
//     identity; heredoc text; a download's content and Last-Modified; a git
//     source's commit, as ls-remote resolves its ref, with its subdir,
//     keep-git-dir, submodules and mtime options: gitSource), the
//     destination and --chown as written (made absolute against WORKDIR:
//     the parent key fixes the image they resolve in, so a key never needs
//     the image's layers), --chmod's mode (octal, or symbolic as written:
//     the writer applies it to each keyed source mode), --parents and
//     --exclude (what they select is in the plan; for --from they are
//     applied when the step runs, so they are keyed as written), ADD
//     --unpack (and whether each source is unpacked: planned.Extract); for --from the source stage's or
//     image's key instead of its files.
//   - WORKDIR (Workdir): the directory and the USER that owns it.
//   - Metadata steps: the step before them (Prev) and the environment and
//     args they see; their entries hold only history, so a cached build
//     repeats the history times.
//
// Read but deliberately not keyed: a copied file's mtime (a touch keeps
// the cache, as in BuildKit; SOURCE_DATE_EPOCH clamps times in new layers)
// and the value of a secret.
type keyInput struct {
	Version  string
	Parent   string
	Prev     string `json:",omitempty"`
	Platform string
	Kind     string
	Command  any
	Layer    string
	Env      []string         `json:",omitempty"`
	Args     []dockerfile.Arg `json:",omitempty"`
	Run      *runKey          `json:",omitempty"`
	Copy     string           `json:",omitempty"`
	Workdir  *workdirKey      `json:",omitempty"`
}

// runKey is what a RUN's key covers beyond the common inputs.
type runKey struct {
	Spec      executor.Spec
	Mounts    string
	CreatedBy string
}

type workdirKey struct {
	Dir, User string
}

// key is the sha256 of k's JSON encoding, streamed into the hash: the
// encoding holds the whole environment.
func (k keyInput) key() (string, error) {
	k.Version = cacheVersion
	return digestJSON(k)
}

// flushCache waits until the cache holds every entry put so far, for a cache that writes
// them in the background (cache.Local).
func (b *build) flushCache() error {
	if f, ok := b.cache.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// copyKey is what a COPY or ADD's key covers beyond the common inputs:
// its plan as the writer will carry it out, and the options the writer
// applies to every file.
func copyKey(op *copyOp, plan []planned, fromKey string) (string, error) {
	in := struct {
		Dest    string
		Chown   string `json:",omitempty"`
		Mode    *fs.FileMode
		Chmod   string   `json:",omitempty"`
		Parents bool     `json:",omitempty"`
		Exclude []string `json:",omitempty"`
		Unpack  *bool    `json:",omitempty"`
		Add     bool
		Context bool
		From    string `json:",omitempty"`
		Plan    []planned
	}{Dest: op.dest, Chown: op.chownSpec, Mode: op.mode, Chmod: op.chmod, Parents: op.parents, Exclude: op.exclude, Unpack: op.unpack, Add: op.add, Context: op.context, From: fromKey, Plan: plan}
	return digestJSON(in)
}

// digestJSON is the sha256 of v's JSON encoding, streamed into the hash.
func digestJSON(v any) (string, error) {
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(v); err != nil {
		return "", fmt.Errorf("encoding cache key: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSHA256(f, p)
}

func readerSHA256(r io.Reader, name string) (string, error) {
	h := sha256.New()
	// Larger reads than io.Copy's 32 KiB: a context of thousands of files
	// is read in fewer system calls.
	buf := hashBuffers.Get().(*[]byte)
	defer hashBuffers.Put(buf)
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{r}, *buf); err != nil {
		return "", fmt.Errorf("hashing %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

var hashBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
