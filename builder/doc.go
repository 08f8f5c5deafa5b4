// Package builder walks the stage graph from package dockerfile and turns it
// into an image: it resolves each stage's base (scratch, an earlier stage,
// a name tagged in the local store, or a registry), looks every step up in
// the build cache, runs RUN steps through a Runner (package executor in
// production, a fake in tests), applies COPY and ADD in the image's merged
// view, writes new layers through package layer, and assembles config and
// manifest with go-containerregistry's types.
//
// The builder owns the config, the cache keys and the order of steps; every
// filesystem effect is either a Runner call or a fresh directory turned into
// a layer by the Store, so nothing here mounts anything.
//
// Semantics follow docker build with BuildKit: history entries carry
// BuildKit's created_by text and comment; a base named in the local store
// wins over the registry (docker looks in its image store first); COPY
// resolves its destination through the image's symlinks as a chroot would,
// while a source that leaves the context, even through a symlink, is an
// error. RUN --mount supports tmpfs, cache (a directory under the store
// root; sharing=shared, locked through flock, or private, which takes a
// fresh directory while another build holds the lock; from= and source=
// are refused) and read-only bind from the context (a copy of what COPY
// would see, owned by root), a stage or an image. WORKDIR creates a
// missing directory, owned by the current USER, in a layer of its own as
// BuildKit does. An ADDed archive holding .wh.* names or a character
// device 0:0 is refused: stored as files they would be whiteouts.
//
// Snapshots: a layer the build writes (COPY, ADD, WORKDIR, a RUN's upper
// dir) keeps its directory, which becomes the layer's snapshot if a later
// step needs the layer as a lower (rootless builds extract instead). The
// snapshots of a resolved base are extracted in the background while the
// build goes on: every missing layer downloads at once (up to four), each
// extracted from its download stream in one pass that also checks its
// digest and diffID, so nothing is stored from a lying registry; a step
// that needs them waits, and meets any extraction error itself. A cold
// COPY from the context stages each file's content (next to the step's
// directory) while it hashes it for the key, before waiting for the base,
// and renames it into place once the destination is resolved. FROM
// scratch + ADD of one local archive at / writes the layer from the
// archive as a stream (layer.ReadCanonical), never extracting it, with
// the bytes extraction and the walk would give. Steps that work on the
// filesystem take one of NumCPU slots, so independent stages run in
// parallel up to the CPU count.
//
// The cache key of a step covers exactly what can change its output, read
// by the same code that uses it (the list is next to keyInput in cache.go):
// the filesystem it starts from, the expanded instruction, how layers are
// written, and per kind what it reads: for RUN the sandbox spec (argv,
// environment, directory, user, network) and its mounts' content, for
// COPY and ADD every attribute of every source file the writer copies
// (never the mtime). A metadata step (ENV, LABEL, ARG, USER, ...) does not
// change the filesystem chain, so, as in BuildKit, a COPY after a changed
// LABEL or an unused build arg stays cached. COPY and RUN bind mounts read
// the context through a descriptor that refuses symlinks, and check what
// they copy against the planned hashes: a context edited while the build
// reads it fails the step instead of storing a wrong entry. An entry holds
// the layer and the history entry, so a cached build gives the same digest.
//
// The caller opens the layer.Store, parses the Dockerfile, and passes both in
// Options together with everything read from the environment
// (SOURCE_DATE_EPOCH, credentials through an authn.Keychain). Build returns
// the image; Tag, Export and Push put it where the user asked. Prune needs
// the store opened exclusively (layer.OpenExclusive), so no build is using
// it.
//
// Filesystem work needs Linux; elsewhere COPY and ADD return an error.
package builder
