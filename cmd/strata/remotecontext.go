package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-build/strata/builder"
)

// remoteContext reads a context argument that is not a local path, as
// docker build does: a git repository (https://host/repo.git#ref:dir,
// git@host:repo) is cloned; an http(s) URL is downloaded and taken as the
// stdin "-" case takes its input (a tar archive, plain or compressed, or
// else the Dockerfile with an empty context). ok is false for anything
// else. -f names a file inside a remote context.
// isRemoteArg reports whether CONTEXT names a git repository or a URL.
func isRemoteArg(arg string) bool {
	return strings.Contains(arg, "://") || strings.HasPrefix(arg, "git@") || strings.HasPrefix(arg, "github.com/")
}

func remoteContext(cmd *cobra.Command, o *buildOptions, arg string) (dir string, src []byte, cleanup func(), ok bool, err error) {
	isHTTP := strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://")
	if !isRemoteArg(arg) {
		return "", nil, nil, false, nil
	}
	tmp, err := os.MkdirTemp("", "strata-context-")
	if err != nil {
		return "", nil, nil, true, err
	}
	remove := func() { os.RemoveAll(tmp) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	ctxDir, _, commit, isGit, err := builder.GitContext(cmd.Context(), arg, tmp)
	if err != nil {
		return "", nil, nil, true, err
	}
	if isGit {
		o.contextCommit = commit
		src, err := readContextDockerfile(ctxDir, o, "the git context")
		return ctxDir, src, remove, true, err
	}
	if !isHTTP {
		remove()
		return "", nil, nil, false, nil
	}
	body, err := download(cmd, arg)
	if err != nil {
		return "", nil, nil, true, err
	}
	defer body.Close()
	// Messages name the URL without its credentials: CI logs keep them.
	src, err = tarContext(cmd, o, tmp, body, builder.RedactURL(arg))
	return filepath.Join(tmp, "ctx"), src, remove, true, err
}

// download opens the body of a context URL.
func download(cmd *cobra.Command, rawURL string) (io.ReadCloser, error) {
	shown := builder.RedactURL(rawURL)
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", shown, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// net/http masks a password, not a token alone in the user field.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			ue.URL = shown
		}
		return nil, fmt.Errorf("build context: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("build context %s: %s", shown, resp.Status)
	}
	return resp.Body, nil
}

// readContextDockerfile reads the Dockerfile, or -f's path, inside the
// context directory dir, resolved inside it: a symlinked Dockerfile cannot
// read host files, nor a FIFO hang the build.
func readContextDockerfile(dir string, o *buildOptions, what string) ([]byte, error) {
	name := "Dockerfile"
	if o.file != "" {
		name = o.file
	}
	src, err := builder.ReadContextFile(dir, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", name, what, err)
	}
	return src, nil
}
