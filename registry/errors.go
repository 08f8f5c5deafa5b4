package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CleanError rewrites the registry responses in err's text as a user
// reads them: which registry said what, without go-containerregistry's
// Go maps of details ("map[Tag:nope]") or its advice that HEAD responses
// have no body; a refused login says where credentials come from.
// errors.Is and errors.As see err as it was.
func CleanError(err error) error {
	var te *transport.Error
	if err == nil || !errors.As(err, &te) {
		return err
	}
	text := err.Error()
	raw := te.Error()
	if !strings.Contains(text, raw) {
		return err
	}
	return &cleanError{text: strings.Replace(text, raw, describe(te), 1), err: err}
}

type cleanError struct {
	text string
	err  error
}

func (e *cleanError) Error() string { return e.text }
func (e *cleanError) Unwrap() error { return e.err }

// describe is one registry response: the registry, what was asked, and
// the codes and messages it gave, or its HTTP status.
func describe(te *transport.Error) string {
	host, what := "a registry", ""
	if r := te.Request; r != nil && r.URL != nil {
		host = r.URL.Host
		what = requestedName(r.URL.Path)
	}
	var reasons []string
	for _, d := range te.Errors {
		reasons = append(reasons, strings.ToLower(strings.TrimSpace(d.Message))+" ("+string(d.Code)+")")
	}
	if len(reasons) == 0 {
		reasons = append(reasons, fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode)))
	}
	s := "registry " + host
	if what != "" {
		s += ", " + what
	}
	s += ": " + strings.Join(reasons, "; ")
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden || hasCode(te, transport.UnauthorizedErrorCode, transport.DeniedErrorCode) {
		s += ": strata reads credentials from docker's config.json (~/.docker/config.json, or $DOCKER_CONFIG/config.json; docker login writes it)"
	}
	return s
}

func hasCode(te *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range te.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// requestedName is the repository and tag or digest of a /v2/ request
// path ("/v2/library/busybox/manifests/latest" is "library/busybox:latest"),
// or "" for another path (a token server's).
func requestedName(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return ""
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		if repo, ref, ok := strings.Cut(rest, kind); ok {
			if strings.HasPrefix(ref, "uploads") {
				return repo
			}
			sep := ":"
			if strings.Contains(ref, ":") {
				sep = "@"
			}
			return repo + sep + ref
		}
	}
	return ""
}
