package registry

import "testing"

func TestInsecureRegistries(t *testing.T) {
	r := Config{Insecure: []string{"reg.lan:5000"}}
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:1234": true, "localhost": true,
		"reg.lan:5000": true, "reg.lan:5001": false, "index.docker.io": false,
	} {
		if got := r.isInsecure(host); got != want {
			t.Errorf("isInsecure(%q) = %t, want %t", host, got, want)
		}
	}
	for in, plain := range map[string]bool{"127.0.0.1:5000/cache": true, "reg.lan:5000/c": true, "ghcr.io/x/y": false} {
		repo, err := r.ParseRepo(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := repo.Scheme() == "http"; got != plain {
			t.Errorf("ParseRepo(%q) scheme %s", in, repo.Scheme())
		}
	}
}
