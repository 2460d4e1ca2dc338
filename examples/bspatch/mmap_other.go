//go:build !unix

package main

import "os"

func mapFile(*os.File, int64) (*mappedFile, error) { return nil, errNoMmap }
