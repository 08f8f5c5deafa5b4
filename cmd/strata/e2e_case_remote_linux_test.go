package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// remoteCases are the end-to-end cases of one feature area (see e2eCases).
func remoteCases() []e2eCase {
	url, err := gitRepoURL()
	if err != nil {
		panic("serving the e2e git repository: " + err.Error())
	}
	return []e2eCase{
		{name: "remote-git", base: "busybox:latest", args: []string{"--build-arg", "GITURL=" + url},
			want: "hello from git\ninner\n/src/run.sh 755 0\n/src/sub/inner.txt 644 0\n/sub/inner.txt 644 1000\n" +
				"/src: . .. ctx hello.txt run.sh sub  /sub: . .. inner.txt \nkept .git\n"},
	}
}

var gitRepo struct {
	once sync.Once
	url  string
	err  error
}

// gitRepoURL serves, for the life of the test binary, a repository over
// git's dumb HTTP protocol (a bare clone after update-server-info, as
// files): what ADD <git URL> fetches in the cases.
func gitRepoURL() (string, error) {
	gitRepo.once.Do(func() {
		gitRepo.url, gitRepo.err = makeGitRepo()
	})
	return gitRepo.url, gitRepo.err
}

func makeGitRepo() (string, error) {
	dir, err := os.MkdirTemp("", "strata-e2e-git-")
	if err != nil {
		return "", err
	}
	work := filepath.Join(dir, "work")
	files := map[string]string{"hello.txt": "hello from git\n", "run.sh": "#!/bin/sh\n", "sub/inner.txt": "inner\n",
		"ctx/Dockerfile": "FROM scratch\nCOPY file /\n", "ctx/file": "context file\n"}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if filepath.Ext(name) == ".sh" {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(work, name)), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), mode); err != nil {
			return "", err
		}
	}
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com", "GIT_AUTHOR_DATE=2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2024-01-01T00:00:00Z")
	bare := filepath.Join(dir, "srv", "repo.git")
	for _, args := range [][]string{
		{"init", "-q", "-b", "main", work},
		{"-C", work, "add", "-A"},
		{"-C", work, "commit", "-q", "-m", "e2e"},
		{"clone", "-q", "--bare", work, bare},
		{"-C", bare, "update-server-info"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %w\n%s", args, err, out)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Join(dir, "srv"))))
	return srv.URL + "/repo.git", nil
}
