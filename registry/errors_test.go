package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestCleanError: what go-containerregistry returns for a missing tag
// (GET and HEAD) and a refused login, as the user reads it: the registry
// and the name, no Go map, no advice about HEAD, and for a login where
// credentials come from.
func TestCleanError(t *testing.T) {
	// As distribution (docker's registry) answers: a missing tag's detail
	// is a JSON object, which go-containerregistry prints as a Go map.
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		if r.Method != http.MethodHead {
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}`)
		}
	}))
	defer reg.Close()
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"app","Action":"pull"}]}]}`)
	}))
	defer denied.Close()
	host := func(s *httptest.Server) string { u, _ := url.Parse(s.URL); return u.Host }
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	_, getErr := remote.Get(ref(host(reg) + "/app:nope"))
	_, headErr := remote.Head(ref(host(reg) + "/app:nope"))
	_, authErr := remote.Get(ref(host(denied) + "/app:1"))
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"missing tag", getErr, "registry " + host(reg) + ", app:nope: manifest unknown (MANIFEST_UNKNOWN)"},
		{"missing tag, HEAD", headErr, "registry " + host(reg) + ", app:nope: 404 Not Found"},
		{"login refused", authErr, "registry " + host(denied) + ", app:1: authentication required (UNAUTHORIZED): strata reads credentials from docker's config.json (~/.docker/config.json, or $DOCKER_CONFIG/config.json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error")
			}
			wrapped := fmt.Errorf("pulling base: %w", tt.err)
			got := CleanError(wrapped)
			if !strings.Contains(got.Error(), tt.want) || !strings.HasPrefix(got.Error(), "pulling base: ") {
				t.Errorf("got %q, want it to contain %q (was %q)", got, tt.want, tt.err)
			}
			for _, noise := range []string{"map[", "HEAD responses", "use GET"} {
				if strings.Contains(got.Error(), noise) {
					t.Errorf("%q still holds %q", got, noise)
				}
			}
			var te *transport.Error
			if !errors.As(got, &te) {
				t.Errorf("the transport error is no longer in the chain")
			}
		})
	}
	if plain := errors.New("x"); CleanError(plain) != plain {
		t.Error("an error from no registry changed")
	}
}
