pub mod cluster;
pub mod containers;
pub mod etcd_process;
pub mod standin;
