module github.com/otaseal/otaseal

go 1.26

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/sigstore/sigstore v1.10.11 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/theupdateframework/go-tuf/v2 v2.4.2 // indirect
)
