package main

// remoteCases are the end-to-end cases of one feature area (see e2eCases).
func remoteCases() []e2eCase {
	return []e2eCase{}
}
