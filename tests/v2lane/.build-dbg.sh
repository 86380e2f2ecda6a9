cat /.v2lane/ctl/marks; ps -ef
