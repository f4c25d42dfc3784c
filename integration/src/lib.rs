pub mod etcd_process;
pub mod standin;
