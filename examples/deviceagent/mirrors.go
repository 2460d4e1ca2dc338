package main

import (
	"strings"

	"github.com/otaseal/otaseal/verify"
)

// serverURLs checks the comma-separated -server list, each entry as
// serverURL does; the first is the server, the others its mirrors.
func serverURLs(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		u, err := serverURL(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// mirrorsOf turns server base URLs into verify's mirrors.
func mirrorsOf(servers []string) []verify.Mirror {
	var out []verify.Mirror
	for _, s := range servers {
		out = append(out, verify.Mirror{MetadataURL: s + "/metadata/", TargetsURL: s + "/targets/"})
	}
	return out
}
