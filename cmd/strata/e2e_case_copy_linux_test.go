package main

// copyFeatureCases are the end-to-end cases of one feature area (see e2eCases).
func copyFeatureCases() []e2eCase {
	return []e2eCase{
		{name: "copy-parents-exclude", base: "busybox:latest",
			want: "e1\ne1/a.png\ne1/keep\ne1/keep/d.png\n" +
				"e2\ne2/c.txt\ne2/keep\ne2/keep/d.png\ne2/skip\ne2/skip/f.md\n" +
				"p1\np1/src\np1/src/app\np1/src/app/main.go\np1/src/lib\np1/src/lib/l.go\n" +
				"p2\np2/app\np2/app/util\np2/app/util/u.go\np2/app/util/u.md\n" +
				"p3\np3/app\np3/app/util\np3/app/util/u.go\np3/src\np3/src/app\np3/src/app/main.go\np3/src/lib\np3/src/lib/l.go\n"},
		{name: "copy-chmod-symbolic", base: "busybox:latest",
			want: "a/plain.txt 704\nb/plain.txt 444\nb/tool.sh 555\nc/inner.txt 600\nc/sub 700\nc/sub/deep.txt 600\nd/plain.txt 646\ne/doc 755\n"},
		{name: "copy-dockerfile-ignore", base: "busybox:latest",
			want: ".dockerignore\nDockerfile\nDockerfile.dockerignore\nkeep.txt\n"},
	}
}
