package builder

import (
	"cmp"
	"slices"
	"sync"
)

// Source is an input a build fetched from elsewhere: a base image (or
// COPY --from / RUN --mount from= image), an ADD URL, a git repository.
// Provenance lists them as its materials.
type Source struct {
	// Kind is "image", "http" or "git".
	Kind string
	// Ref is the image reference or URL as written, credentials removed.
	Ref string
	// Digest is what it resolved to: the image's manifest digest or the
	// download's "sha256:<hex>", a git commit as "sha1:<hex>" (or sha256).
	Digest string
	// Platform is the image's ("linux/arm64"); "" for the others.
	Platform string
}

// sourceLog collects a build's sources, each once.
type sourceLog struct {
	mu   sync.Mutex
	seen map[Source]bool
}

func (l *sourceLog) add(s Source) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[Source]bool{}
	}
	l.seen[s] = true
}

// list is the sources sorted, so provenance does not depend on the order
// concurrent stages fetched them in.
func (l *sourceLog) list() []Source {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Source
	for s := range l.seen {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Source) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Platform, b.Platform), cmp.Compare(a.Digest, b.Digest))
	})
	return out
}
