// Package registry is how Strata reaches OCI registries: which are plain
// HTTP, which credentials apply, and layers whose blobs stay in a registry
// until something reads them (Blobs). The builder pulls bases and the
// cache imports and exports through it.
package registry

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Config says how registries are reached.
type Config struct {
	// Keychain finds credentials; authn.DefaultKeychain reads docker's
	// config.json and credential helpers.
	Keychain authn.Keychain
	// Insecure registries (host:port) are reached over plain HTTP, as are
	// localhost and 127.0.0.1 always.
	Insecure []string
	// Transport is the HTTP transport; the default when nil.
	Transport http.RoundTripper
}

// ParseRef parses an image reference, marking localhost, 127.0.0.1 and
// the insecure registries as plain HTTP.
func (c Config) ParseRef(ref string) (name.Reference, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parsing reference %s: %w", ref, err)
	}
	if !c.isInsecure(parsed.Context().RegistryStr()) {
		return parsed, nil
	}
	return name.ParseReference(ref, name.Insecure)
}

// ParseRepo parses a repository ("registry/name") as ParseRef does.
func (c Config) ParseRepo(repo string) (name.Repository, error) {
	parsed, err := name.NewRepository(repo)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parsing repository %s: %w", repo, err)
	}
	if !c.isInsecure(parsed.RegistryStr()) {
		return parsed, nil
	}
	return name.NewRepository(repo, name.Insecure)
}

func (c Config) isInsecure(host string) bool {
	h := host
	if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	return h == "localhost" || h == "127.0.0.1" || h == "[::1]" || slices.Contains(c.Insecure, host)
}

// RemoteOptions are go-containerregistry's options for this configuration.
// go-containerregistry retries temporary errors (5xx, 429, timeouts)
// with backoff itself.
func (c Config) RemoteOptions(ctx context.Context) []remote.Option {
	kc := c.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(c.transport())}
}

// defaultTransport is http.DefaultTransport that gives up on a registry
// that accepts a request and never answers: a CI job would hang until its
// own timeout, with no line saying why.
var defaultTransport = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	return t
}()

func (c Config) transport() http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return defaultTransport
}
