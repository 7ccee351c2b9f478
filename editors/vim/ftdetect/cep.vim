au BufRead,BufNewFile *.cep setfiletype cep
